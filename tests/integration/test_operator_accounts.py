"""Operators are people with accounts, and passwords cannot be guessed at full speed (issue: 300
wrong passwords in 1.6 s on /ui, no delay or lockout, a one-character password accepted).

On the real API and PostgreSQL: 300 wrong passwords get only a few checked before the account
locks (every later one refused unchecked with 429 and Retry-After, the right one too), the lock
is audited and cleared with ``hub operators unlock``; the default slowing lets one wrong
password in per delay; accounts are argon2id hashes with a minimum length."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hub.core.login_policy import LoginPolicy
from hub.db.engine import unit_of_work
from hub.db.models import IntegrationEvent, OperatorAccount
from hub.entrypoints.api import create_api
from hub.entrypoints.cli.main import cli
from hub.services import operators
from hub.settings import Settings, get_settings

NAME, PASSWORD = "ada", "a long and right password"


def api(login: LoginPolicy) -> TestClient:
    settings: Settings = get_settings().model_copy(update={"login": login})
    return TestClient(create_api(settings), follow_redirects=False)


def cli_run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin, terminal_width=200)
    return result.exit_code, result.output


def add_ada() -> None:
    code, output = cli_run("operators", "add", NAME, "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, output


def events(event_type: str) -> list[IntegrationEvent]:
    with unit_of_work() as session:
        return list(
            session.scalars(
                select(IntegrationEvent).where(IntegrationEvent.event_type == event_type)
            )
        )


def test_an_account_is_an_argon2id_hash_and_its_password_opens_the_pages() -> None:
    add_ada()

    with unit_of_work() as session:
        account = session.get(OperatorAccount, NAME)
        assert account is not None and account.password_hash is not None
        assert (
            account.password_hash.startswith("$argon2id$") and PASSWORD not in account.password_hash
        )
    client = api(LoginPolicy())
    assert client.get("/ui/failures", auth=(NAME, PASSWORD)).status_code == 200
    assert events(operators.OPERATOR_ADDED)[0].detail["operator"] == NAME


def test_a_short_password_or_a_bad_name_is_refused_saying_why() -> None:
    code, output = cli_run("operators", "add", "bob", "--password-stdin", stdin="x\n")
    assert code == 1 and "at least 12 characters" in output
    code, output = cli_run("operators", "add", "[/x]", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 1 and "is not an operator name" in output
    assert (
        cli_run("operators", "list")[1].strip() == "no operator accounts (hub operators add NAME)"
    )


def test_300_wrong_passwords_lock_the_account_after_10_and_only_unlock_clears_it() -> None:
    add_ada()
    client = api(LoginPolicy(backoff=0, lock_after=10, lock_seconds=900))

    answers = [client.get("/ui", auth=(NAME, f"guess-{n:04d}")).status_code for n in range(300)]

    # Ten were checked (401); every later one was refused without checking the password.
    assert answers[:10] == [401] * 10 and set(answers[10:]) == {429}
    refused = client.get("/ui/failures", auth=(NAME, PASSWORD))
    assert refused.status_code == 429, "the right password does not get past the lock"
    assert 800 < int(refused.headers["Retry-After"]) <= 900
    assert "hub operators unlock" in refused.json()["detail"]
    assert len(events(operators.LOGIN_FAILED)) == 10
    [locked] = events(operators.OPERATOR_LOCKED)
    assert (locked.detail["operator"], locked.detail["failed_logins"]) == (NAME, 10)
    code, listing = cli_run("operators", "list")
    assert code == 0 and "ada" in listing and " 10 " in listing

    code, output = cli_run("operators", "unlock", NAME)

    assert code == 0, output
    assert client.get("/ui/failures", auth=(NAME, PASSWORD)).status_code == 200
    assert events(operators.OPERATOR_UNLOCKED)[0].detail["failed_logins"] == 10


def test_by_default_each_wrong_password_doubles_the_wait_so_300_guesses_get_a_handful_checked() -> (
    None
):
    add_ada()
    client = api(LoginPolicy())  # backoff 1 s, doubling

    answers = [client.get("/ui", auth=(NAME, f"guess-{n:04d}")) for n in range(300)]

    codes = [a.status_code for a in answers]
    # A check only once the delay since the last wrong one has passed (1 s, 2 s, 4 s, ...): a
    # handful however slow this machine is, never more than the lock allows.
    checked = codes.count(401)
    assert codes[0] == 401 and 1 <= checked <= 10 and codes.count(429) == 300 - checked
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)
    assert len(events(operators.LOGIN_FAILED)) == checked  # one hash spent per check


def test_a_removed_operator_is_refused_and_the_settings_account_has_counters_too() -> None:
    add_ada()
    client = api(LoginPolicy(backoff=0, lock_after=3))
    assert cli_run("operators", "remove", NAME)[0] == 0
    assert client.get("/ui", auth=(NAME, PASSWORD)).status_code == 401

    settings = get_settings()
    assert settings.operator_user and settings.operator_password
    for _ in range(3):
        assert client.get("/ui", auth=(settings.operator_user, "wrong")).status_code == 401
    right = (settings.operator_user, settings.operator_password.get_secret_value())
    assert client.get("/ui", auth=right).status_code == 429
    assert cli_run("operators", "unlock", settings.operator_user)[0] == 0
    assert client.get("/ui", auth=right).status_code == 303  # to the failures page


def test_one_client_trying_name_after_name_is_slowed_too() -> None:
    add_ada()
    client = api(LoginPolicy())  # backoff 1 s, doubling

    answers = [client.get("/ui", auth=(f"name-{n}", "guess")).status_code for n in range(100)]

    # Names with no account cost a hash each: after a wrong one, the client waits.
    assert answers[0] == 401 and answers.count(401) <= 10 and 429 in answers
    assert client.get("/ui", auth=(NAME, PASSWORD)).status_code == 429  # same client, waits
