"""Signatures made the way docs/security.md tells a sender to (openssl in a shell), not with the
hub's own ``signature()``: the hub computes the same value, and accepts the request."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.db.engine import unit_of_work
from hub.db.models import Order
from hub.entrypoints.api import create_api
from hub.entrypoints.api_auth import signature_v2
from hub.services import keys
from tests.factories import order_payload

DOCS = Path(__file__).resolve().parents[2] / "docs/security.md"


def documented_recipe() -> str:
    """The ``SIG=...`` command of docs/security.md (with its continuation lines), word for word,
    then the value it made."""
    lines = DOCS.read_text().splitlines()
    [start] = [n for n, x in enumerate(lines) if x.startswith("SIG=")]
    command = [lines[start]]
    while command[-1].endswith("\\"):
        command.append(lines[start + len(command)])
    recipe = "\n".join(command)
    return f"{recipe}\nprintf '%s' \"$SIG\"\n"


def openssl_signature(secret: str, stamp: str, body: str, idempotency_key: str = "") -> str:
    if shutil.which("openssl") is None:
        pytest.fail("this test needs the openssl command line (apt-get install openssl)")
    done = subprocess.run(
        ["bash", "-c", documented_recipe()],
        env={
            **os.environ,
            "TS": stamp,
            "BODY": body,
            "SECRET": secret,
            "IDEM": idempotency_key,
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_the_documented_recipe_and_the_hub_compute_the_same_signature() -> None:
    body = json.dumps(order_payload())
    stamp = "1700000000"

    by_openssl = openssl_signature("a-secret-of-the-test", stamp, body, "crm-1001-v1")

    assert len(by_openssl) == 64, by_openssl
    assert (
        signature_v2("a-secret-of-the-test", stamp, "POST", "/orders", "crm-1001-v1", body.encode())
        == f"v2={by_openssl}"
    )


def test_a_request_signed_with_openssl_is_accepted_and_a_tampered_one_refused() -> None:
    with unit_of_work() as session:
        key = keys.create_key(session, "shop", signing=True)
    assert key.signing_secret is not None
    body = json.dumps(order_payload())
    stamp = str(int(time.time()))
    headers = {
        "Authorization": f"Bearer {key.token}",
        "X-Hub-Timestamp": stamp,
        "Idempotency-Key": "crm-1001-v1",
        "X-Hub-Signature": "v2="
        + openssl_signature(key.signing_secret, stamp, body, "crm-1001-v1"),
        "content-type": "application/json",
    }
    client = TestClient(create_api())

    tampered = client.post("/orders", content=body.replace("}", " }", 1), headers=headers)
    accepted = client.post("/orders", content=body, headers=headers)

    assert (tampered.status_code, tampered.json().get("reason")) == (401, "bad_signature")
    assert accepted.status_code == 202, accepted.text
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 1
