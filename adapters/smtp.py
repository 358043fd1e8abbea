"""SMTP adapter: the ``Notifier`` port, one e-mail per order and step (stdlib smtplib).

Exactly once in effect: the ``Message-ID`` is derived from the idempotency key
(``<order_id.step@hub>``), so a message sent again after a lost answer is the same message,
which the receiving side (and the sandbox's ledger) counts once. SMTP replies become the hub's
errors here: 4xx and no answer are transient, 5xx permanent (its code kept).
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Self
from urllib.parse import urlsplit

from hub.core.errors import PermanentError, TransientError
from hub.core.ports.downstream import Notification, Notified
from hub.core.system_settings import SystemSettings

SENDER = "orders@hub.invalid"


def message_id(key: str) -> str:
    """``<order_id.step@hub>`` from the key ``order_id:step``: stable across retries."""
    return f"<{key.replace(':', '.')}@hub>"


class SmtpNotifier:
    system = "smtp"

    def __init__(self, *, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout

    @classmethod
    def from_settings(cls, settings: SystemSettings) -> Self:
        where = urlsplit(settings.url)
        if where.scheme != "smtp" or not where.hostname:
            raise ValueError(f"HUB_SMTP_URL must be smtp://host:port, not {settings.url!r}")
        return cls(
            host=where.hostname,
            port=where.port or 25,
            timeout=settings.connect_timeout + settings.read_timeout,
        )

    def __repr__(self) -> str:
        return f"SmtpNotifier(host={self.host!r}, port={self.port!r})"

    def check(self) -> None:
        with self._connect() as smtp:
            self._answer(lambda: smtp.noop(), "NOOP")

    def notify(self, notification: Notification, key: str) -> Notified:
        mail = EmailMessage()
        mail["From"] = SENDER
        mail["To"] = f"{notification.to_name} <{notification.to_address}>"
        mail["Subject"] = notification.subject
        mail["Message-ID"] = message_id(key)
        mail["X-Idempotency-Key"] = key
        mail.set_content(notification.body)
        with self._connect() as smtp:
            self._answer(lambda: smtp.send_message(mail), "send")
        return Notified(message_id=message_id(key))

    def _connect(self) -> smtplib.SMTP:
        try:
            return smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(
                system=self.system, message=f"connect to {self.host}:{self.port}: {exc}"
            ) from exc

    def _answer(self, call: object, what: str) -> None:
        assert callable(call)
        try:
            call()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise PermanentError(
                system=self.system, message=f"{what}: recipient refused", code=str(codes[0])
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raw = exc.smtp_error
            text = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))[:300]
            if 400 <= exc.smtp_code < 500:
                raise TransientError(
                    system=self.system,
                    message=f"{what}: {exc.smtp_code} {text}",
                    code=str(exc.smtp_code),
                    system_down=False,
                ) from exc
            raise PermanentError(
                system=self.system,
                message=f"{what}: {exc.smtp_code} {text}",
                code=str(exc.smtp_code),
            ) from exc
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise TransientError(system=self.system, message=f"{what}: {exc}") from exc
