"""Operator surfaces take the operator's basic-auth credentials, and are closed without them."""

from __future__ import annotations

import base64
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hub.entrypoints.api import create_api
from hub.entrypoints.ui.operator_auth import (
    NOT_CONFIGURED,
    form_token_valid,
    issue_form_token,
    parse_basic,
)
from hub.settings import get_settings

GROUP = "0123456789ab"
PAGES = (
    "/ui",
    "/ui/failures",
    f"/ui/orders/{uuid.uuid4()}",
    f"/ui/groups/{GROUP}",
    f"/ui/groups/{GROUP}/replay",
    f"/ui/groups/{GROUP}/discard",
    "/ui/failures/replay",
    "/ui/status",
    "/ui/status/live",
    "/ui/static/status.js",
)


def operator_surfaces() -> list[tuple[str, str]]:
    failure = uuid.uuid4()
    return [
        *(("GET", page) for page in PAGES),
        ("POST", f"/ui/failures/{failure}/replay"),
        ("POST", f"/ui/failures/{failure}/discard"),
        ("POST", f"/ui/groups/{GROUP}/replay"),
        ("POST", f"/ui/groups/{GROUP}/discard"),
        ("POST", "/ui/failures/replay"),
    ]


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_api(), follow_redirects=False)


def operator() -> tuple[str, str]:
    settings = get_settings()
    assert settings.operator_user and settings.operator_password
    return settings.operator_user, settings.operator_password.get_secret_value()


@pytest.mark.parametrize(("method", "path"), operator_surfaces())
def test_without_credentials_every_operator_surface_answers_401_with_a_challenge(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="hub operator"')


@pytest.mark.parametrize(
    "auth",
    [
        ("test-operator", "wrong"),
        ("someone-else", "test-operator-password-3c9d"),
        ("", ""),
        ("test-operator", "test-operator-password-3c9d" + "x"),
    ],
)
def test_wrong_credentials_answer_401(client: TestClient, auth: tuple[str, str]) -> None:
    assert client.get("/ui/failures", auth=auth).status_code == 401
    assert client.post(f"/ui/failures/{uuid.uuid4()}/replay", auth=auth).status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer abc", "Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode()],
)
def test_a_malformed_authorization_header_answers_401(client: TestClient, header: str) -> None:
    assert client.get("/ui/failures", headers={"Authorization": header}).status_code == 401


@pytest.mark.parametrize(("method", "path"), operator_surfaces())
def test_without_configured_credentials_the_surfaces_answer_503_never_open(
    method: str, path: str
) -> None:
    unconfigured = get_settings().model_copy(
        update={"operator_user": None, "operator_password": None}
    )
    client = TestClient(create_api(unconfigured), follow_redirects=False)

    for response in (client.request(method, path), client.request(method, path, auth=operator())):
        assert response.status_code == 503
        assert response.json()["detail"] == NOT_CONFIGURED


def test_the_operator_gets_the_page_with_headers_that_forbid_scripts_and_framing(
    client: TestClient,
) -> None:
    response = client.get("/ui/failures", auth=operator())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    # "no-referrer" would make browsers send "Origin: null" and fail our own forms' check.
    assert response.headers["referrer-policy"] == "same-origin"
    assert "operator: test-operator" in response.text
    assert client.get("/ui", auth=operator()).headers["location"] == "/ui/failures"


def test_intake_and_health_stay_outside_operator_auth(client: TestClient) -> None:
    assert client.get("/healthz").status_code in (200, 503)
    assert client.get(f"/orders/{uuid.uuid4()}").status_code != 503


def test_parse_basic_reads_only_well_formed_basic_headers() -> None:
    encoded = base64.b64encode("ops:pa:ss wörd".encode()).decode()

    assert parse_basic(f"Basic {encoded}") == ("ops", "pa:ss wörd")
    assert parse_basic(f"basic {encoded}") == ("ops", "pa:ss wörd")
    assert parse_basic(None) is None
    assert parse_basic("Basic") is None
    assert parse_basic("Basic " + base64.b64encode(b"\xff:\xfe").decode()) is None


def test_form_tokens_are_bound_to_the_operator_the_password_and_a_lifetime() -> None:
    settings = get_settings()
    now = time.time()
    token = issue_form_token(settings, "test-operator", now=now)
    other_password = settings.model_copy(update={"operator_password": SecretStr("changed")})

    assert form_token_valid(settings, "test-operator", token, now=now)
    assert form_token_valid(settings, "test-operator", token, now=now + 11 * 3600)
    assert not form_token_valid(settings, "test-operator", token, now=now + 13 * 3600)
    assert not form_token_valid(settings, "someone-else", token, now=now)
    assert not form_token_valid(other_password, "test-operator", token, now=now)
    assert not form_token_valid(settings, "test-operator", "", now=now)
    tampered = token[:-1] + ("1" if token.endswith("0") else "0")
    assert not form_token_valid(settings, "test-operator", tampered, now=now)
