"""The request signature's format, pinned by a known answer (computed once with
``printf '%s.%s' 1700000000 '{"external_id":"KA-1"}' | openssl dgst -sha256 -hmac
hub-known-answer-secret``): a change of the format, of the key's encoding or of the separator
breaks every sender's signatures, and fails here first."""

from __future__ import annotations

from hub.entrypoints.api_auth import signature, signature_v2

SECRET = "hub-known-answer-secret"
STAMP = "1700000000"
BODY = b'{"external_id":"KA-1"}'
KNOWN = "sha256=8ee225635aa393eb871e3622aafb557c257ff69bae9f970425b660d666156fdb"


def test_the_signature_of_a_fixed_request_is_the_known_answer() -> None:
    assert signature(SECRET, STAMP, BODY) == KNOWN


def test_every_part_of_the_request_changes_the_signature() -> None:
    assert signature(SECRET + "x", STAMP, BODY) != KNOWN
    assert signature(SECRET, "1700000001", BODY) != KNOWN
    assert signature(SECRET, STAMP, BODY + b" ") != KNOWN


# printf 'v2\n1700000000\nPOST\n/orders\nkey-1\n{"a":1}' | openssl dgst -sha256 -hmac s3cret
KNOWN_V2 = "v2=96cec3342f9dda8449429aa0e587ecaa8c9bb412b560b01649cb022c2204b2bc"


def test_the_v2_signature_covers_method_path_and_idempotency_key() -> None:
    def v2(method: str = "POST", path: str = "/orders", key: str = "key-1") -> str:
        return signature_v2("s3cret", STAMP, method, path, key, b'{"a":1}')

    assert v2() == KNOWN_V2
    assert len({v2(), v2(method="PUT"), v2(path="/orders/x/cancel"), v2(key="")}) == 4
