"""What a failed connection means, and its fix: one place, so every command, page and check
gives the same hint for the same cause (a wrong password is not a server that is down)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from amqp.exceptions import AccessRefused, NotAllowed
from kombu.connection import Connection

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
RABBIT_START = "rabbitmq-server -detached"

_MISSING_VHOST = re.compile(r"vhost (\S+) not found")
_VHOST_REFUSED = re.compile(r"access to vhost '([^']*)' refused for user '([^']*)'")


@dataclass(frozen=True)
class Diagnosis:
    reason: str
    # What to do about it.
    hint: str
    # The server answered and refused us: starting it is not the fix.
    answered: bool = False


def rabbitmq_hint(exc: BaseException, broker_url: str) -> Diagnosis:
    """Why a RabbitMQ connection failed with ``exc``, and what to do."""
    reason = str(exc) or type(exc).__name__
    user = Connection(broker_url.split(";")[0]).userid or "guest"
    if isinstance(exc, AccessRefused):
        return Diagnosis(
            f"RabbitMQ refused the login of user {user!r} (ACCESS_REFUSED): the server answers, "
            "the credentials are wrong",
            f"check the user and password in HUB_BROKER_URL (rabbitmqctl list_users; "
            f"rabbitmqctl change_password {user} <password>)",
            answered=True,
        )
    if isinstance(exc, NotAllowed):
        text = getattr(exc, "reply_text", "") or reason
        if missing := _MISSING_VHOST.search(text):
            vhost = missing.group(1)
            return Diagnosis(
                f"RabbitMQ has no vhost {vhost!r} (NOT_ALLOWED)",
                f"create it: rabbitmqctl add_vhost {vhost}; rabbitmqctl set_permissions -p "
                f"{vhost} {user} '.*' '.*' '.*'  (or fix the vhost in HUB_BROKER_URL)",
                answered=True,
            )
        if refused := _VHOST_REFUSED.search(text):
            vhost, who = refused.groups()
            return Diagnosis(
                f"user {who!r} has no permissions on vhost {vhost!r} (NOT_ALLOWED)",
                f"grant them: rabbitmqctl set_permissions -p {vhost} {who} '.*' '.*' '.*'",
                answered=True,
            )
        return Diagnosis(reason, "check the vhost and user in HUB_BROKER_URL", answered=True)
    return Diagnosis(reason, f"start it with: {RABBIT_START}")


def postgres_hint(reason: str) -> Diagnosis:
    """What to do about a PostgreSQL connection that failed saying ``reason``."""
    if "does not exist" in reason and "database" in reason:
        return Diagnosis(reason, "create it with: make migrate  (or hub migrate)", answered=True)
    if "password authentication failed" in reason or "no password supplied" in reason:
        return Diagnosis(reason, "check the user and password in HUB_DATABASE_URL", answered=True)
    if "role" in reason and "does not exist" in reason:
        hint = "check the user in HUB_DATABASE_URL (createuser, or another user)"
        return Diagnosis(reason, hint, answered=True)
    if "no pg_hba.conf entry" in reason:
        hint = "allow this host and user in pg_hba.conf, or fix HUB_DATABASE_URL"
        return Diagnosis(reason, hint, answered=True)
    return Diagnosis(reason, f"start it with: {PG_START}  (then: make migrate)")
