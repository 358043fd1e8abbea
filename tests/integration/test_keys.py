"""Intake authentication on real PostgreSQL: keys, revocation, signatures, and the attacks tried.

Every refusal must come before anything is stored, name what is wrong, and never echo back
what the caller presented.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from hub.db.engine import get_engine, unit_of_work
from hub.db.models import ApiKey, Order
from hub.entrypoints import api_auth as intake_auth
from hub.entrypoints.api import create_api
from hub.entrypoints.api_auth import signature, signature_v2
from hub.entrypoints.cli.main import cli
from hub.services import keys
from hub.settings import get_settings
from tests.factories import order_payload


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_api())


def new_key(sender: str = "crm", *, signing: bool = False) -> keys.NewKey:
    with unit_of_work() as session:
        return keys.create_key(session, sender, signing=signing)


def bearer(key: keys.NewKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.token}"}


def orders_stored() -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Order)) or 0


def post(client: TestClient, headers: dict[str, Any], body: bytes | None = None) -> Any:
    payload = body if body is not None else json.dumps(order_payload()).encode()
    return client.post(
        "/orders", content=payload, headers={"content-type": "application/json", **headers}
    )


def signed(key: keys.NewKey, body: bytes, *, at: float | None = None) -> dict[str, str]:
    assert key.signing_secret is not None
    stamp = str(int(time.time() if at is None else at))
    return {
        **bearer(key),
        "X-Hub-Timestamp": stamp,
        "X-Hub-Signature": signature(key.signing_secret, stamp, body),
    }


def test_a_key_is_stored_only_as_a_hash_and_lets_its_sender_post_and_read(
    client: TestClient,
) -> None:
    key = new_key()

    posted = post(client, bearer(key))
    read = client.get(f"/orders/{posted.json()['order_id']}", headers=bearer(key))
    by_header = post(client, {"X-Api-Key": key.token})

    assert (posted.status_code, read.status_code, by_header.status_code) == (202, 200, 202)
    with get_engine().connect() as connection:
        row = connection.execute(text("SELECT * FROM api_keys")).mappings().one()
    assert key.token not in json.dumps({k: str(v) for k, v in row.items()})
    assert row["key_hash"] == keys.hash_key(key.token)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_credentials"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "bad_authorization"),
        ({"Authorization": "Bearer"}, "bad_authorization"),
        ({"Authorization": "Bearer not-a-hub-key"}, "malformed_api_key"),
        ({"X-Api-Key": "x" * 5000}, "malformed_api_key"),
        ({"Authorization": "Bearer hub_000000000000_" + "A" * 43}, "invalid_api_key"),
    ],
)
def test_missing_or_malformed_credentials_get_401_naming_the_problem(
    client: TestClient, headers: dict[str, str], reason: str
) -> None:
    response = post(client, headers)

    assert response.status_code == 401
    assert response.json()["reason"] == reason
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert orders_stored() == 0


def test_a_right_key_id_with_a_wrong_secret_is_refused_without_echoing_it(
    client: TestClient,
) -> None:
    key = new_key()
    forged = key.token[:-4] + ("AAAA" if not key.token.endswith("AAAA") else "BBBB")

    response = post(client, {"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401
    assert response.json()["reason"] == "invalid_api_key"
    assert forged not in response.text and key.token not in response.text
    assert orders_stored() == 0


def test_auth_comes_before_the_body_is_read_or_its_type_checked(client: TestClient) -> None:
    oversized = post(client, {}, body=b"x" * 200_000)
    form = client.post("/orders", content=b"a=b", headers={"content-type": "text/plain"})

    assert (oversized.status_code, form.status_code) == (401, 401)
    assert orders_stored() == 0


def test_reading_an_order_needs_a_key_and_health_does_not(client: TestClient) -> None:
    key = new_key()
    order_id = post(client, bearer(key)).json()["order_id"]

    assert client.get(f"/orders/{order_id}").status_code == 401
    assert client.get(f"/orders/{order_id}", headers={"X-Api-Key": "hub_x"}).status_code == 401
    assert client.get("/healthz").status_code == 200


def test_a_revoked_key_fails_on_the_very_next_request(client: TestClient) -> None:
    key = new_key()
    assert post(client, bearer(key)).status_code == 202

    with unit_of_work() as session:
        keys.revoke_key(session, key.key_id, by="test")
    response = post(client, bearer(key))

    assert response.status_code == 401
    assert response.json()["reason"] == "revoked_api_key"
    assert client.get("/orders/anything", headers=bearer(key)).status_code == 401
    assert orders_stored() == 1


def test_a_signing_key_needs_a_fresh_signature_over_the_exact_body(client: TestClient) -> None:
    key = new_key("webhooks", signing=True)
    body = json.dumps(order_payload()).encode()
    tampered = body.replace(b'"qty": 2', b'"qty": 9')
    assert tampered != body
    now = time.time()

    answers = {
        "unsigned": post(client, bearer(key), body),
        "tampered body": post(client, signed(key, body), tampered),
        "wrong secret": post(
            client,
            {**signed(key, body), "X-Hub-Signature": signature("guess", str(int(now)), body)},
            body,
        ),
        "stale (301 s)": post(client, signed(key, body, at=now - 301), body),
        "future (120 s)": post(client, signed(key, body, at=now + 120), body),
        "timestamp not a number": post(
            client, {**signed(key, body), "X-Hub-Timestamp": "soon"}, body
        ),
        "non-ASCII signature": post(
            client, {**signed(key, body), "X-Hub-Signature": "sha256=é".encode("latin-1")}, body
        ),
    }
    reasons = {what: (r.status_code, r.json()["reason"]) for what, r in answers.items()}
    assert reasons == {
        "unsigned": (401, "missing_signature"),
        "tampered body": (401, "bad_signature"),
        "wrong secret": (401, "bad_signature"),
        "stale (301 s)": (401, "stale_timestamp"),
        "future (120 s)": (401, "future_timestamp"),
        "timestamp not a number": (401, "bad_timestamp"),
        "non-ASCII signature": (401, "bad_signature"),
    }
    assert orders_stored() == 0
    assert key.signing_secret is not None
    assert all(key.signing_secret not in r.text for r in answers.values())

    first = post(client, signed(key, body), body)
    replayed = post(client, signed(key, body), body)  # within the window: the same order again
    assert (first.status_code, replayed.status_code) == (202, 200)
    assert orders_stored() == 1


def test_intake_auth_can_be_switched_off_explicitly_for_a_local_trial() -> None:
    open_intake = TestClient(create_api(get_settings().model_copy(update={"intake_auth": False})))

    assert post(open_intake, {}).status_code == 202


def test_the_cli_shows_a_key_once_lists_it_without_secrets_and_revokes_it(
    client: TestClient,
) -> None:
    runner = CliRunner()

    created = runner.invoke(cli, ["keys", "create", "crm-eu", "--sign"])
    assert created.exit_code == 0, created.output
    token = next(w for w in created.output.split() if w.startswith("hub_"))
    with unit_of_work() as session:
        [row] = session.scalars(select(ApiKey)).all()
        key_id, secret = row.id, row.signing_secret
    assert secret is not None and secret in created.output

    listed = runner.invoke(cli, ["keys", "list"])
    assert listed.exit_code == 0 and key_id in listed.output and "crm-eu" in listed.output
    assert token not in listed.output and secret not in listed.output
    assert keys.hash_key(token) not in listed.output

    revoked = runner.invoke(cli, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    assert post(client, {"Authorization": f"Bearer {token}"}).json()["reason"] == (
        "revoked_api_key"
    )
    assert f"key {key_id} of crm-eu revoked" in revoked.output
    again = runner.invoke(cli, ["keys", "revoke", key_id])
    assert again.exit_code == 0 and "was already revoked" in again.output, again.output
    assert "signing secret is stored as it is" in " ".join(created.output.split())
    unknown = runner.invoke(cli, ["keys", "revoke", "nosuchkey"])
    assert unknown.exit_code == 1 and "no key" in unknown.output
    bad_sender = runner.invoke(cli, ["keys", "create", "no spaces please"])
    assert bad_sender.exit_code == 1


def test_with_postgresql_down_a_key_check_answers_503_not_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()

    def database_down(token: str) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionError("connection refused"))

    monkeypatch.setattr(intake_auth.keys, "check_key", database_down)
    response = post(client, bearer(key))

    assert response.status_code == 503
    assert response.json()["reason"] == "database_unavailable"
    assert key.token not in response.text


def signed_v2(
    key: keys.NewKey, body: bytes, *, method: str = "POST", path: str = "/orders", idem: str = ""
) -> dict[str, str]:
    assert key.signing_secret is not None
    stamp = str(int(time.time()))
    value = signature_v2(key.signing_secret, stamp, method, path, idem, body)
    return {**bearer(key), "X-Hub-Timestamp": stamp, "X-Hub-Signature": value}


def test_a_v2_signature_binds_method_path_and_idempotency_key(client: TestClient) -> None:
    key = new_key("webhooks", signing=True)
    body = json.dumps(order_payload()).encode()

    with_key = {**signed_v2(key, body, idem="K-1"), "Idempotency-Key": "K-1"}
    accepted = post(client, with_key, body)
    other_key = post(client, {**with_key, "Idempotency-Key": "K-2"}, body)
    other_path = post(client, signed_v2(key, body, path="/orders/x/cancel"), body)
    cancel = client.post(
        f"/orders/{accepted.json()['order_id']}/cancel",
        content=b"{}",
        headers={"content-type": "application/json", **signed_v2(key, body)},
    )

    assert accepted.status_code == 202, accepted.json()
    for refused in (other_key, other_path, cancel):
        assert (refused.status_code, refused.json()["reason"]) == (401, "bad_signature")
    assert orders_stored() == 1


def test_the_old_signature_is_accepted_only_while_hub_signature_v1_says_so() -> None:
    key = new_key("webhooks", signing=True)
    body = json.dumps(order_payload()).encode()
    old_ok = TestClient(create_api())
    assert post(old_ok, signed(key, body), body).status_code == 202

    strict = TestClient(create_api(get_settings().model_copy(update={"signature_v1": False})))
    body = json.dumps(order_payload()).encode()
    refused = post(strict, signed(key, body), body)
    assert (refused.status_code, refused.json()["reason"]) == (401, "bad_signature")
    assert "no longer accepted" in refused.json()["detail"]
    assert post(strict, signed_v2(key, body), body).status_code == 202
