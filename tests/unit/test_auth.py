"""Token and access-key signatures, checked against the official SDK's own construction."""

from __future__ import annotations

import base64
import hashlib
import hmac

from eas_core.auth.keys import (
    AccessKey,
    parse_authorization,
    sign_request,
    signed_headers_problem,
    verify_request,
)
from eas_core.auth.tokens import generate_token, is_authorized_request, sign

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sdk_signature(token: str, body: bytes, content_type: str, date: str, resource: str) -> str:
    """What eas_prediction's PredictClient.generate_singaure computes."""
    md5 = hashlib.md5(body).hexdigest()
    auth = f"POST\n{md5}\n{content_type}\n{date}\n{resource}"
    mac = hmac.new(bytearray(token, "utf-8"), bytearray(auth.strip(), "utf-8"), hashlib.sha1)
    return "EAS " + base64.b64encode(mac.digest()).decode().strip()


def check(token: str, headers: dict[str, str], body: bytes, path: str) -> bool:
    # As the HTTP kit hands headers over: names in lower case.
    received = {name.lower(): value for name, value in headers.items()}
    return is_authorized_request(token, received, path=path, body=body)


def test_signature_matches_the_official_sdk() -> None:
    date = "Wed, 25 Nov 2026 08:00:00 GMT"
    headers = sign("tok", b"body", "/api/predict/svc", date=date)
    assert headers["Authorization"] == sdk_signature(
        "tok", b"body", "application/octet-stream", date, "/api/predict/svc"
    )
    assert check("tok", headers, b"body", "/api/predict/svc")


def test_signature_binds_body_path_and_token() -> None:
    headers = sign("tok", b"body", "/api/predict/svc")
    assert not check("tok", headers, b"other", "/api/predict/svc")
    assert not check("tok", headers, b"body", "/api/predict/other")
    assert not check("other", headers, b"body", "/api/predict/svc")


def test_plain_and_open() -> None:
    assert check("tok", {"Authorization": "tok"}, b"", "/x")
    assert not check("tok", {"Authorization": "to"}, b"", "/x")
    assert not check("tok", {}, b"", "/x")
    assert is_authorized_request(None, {}, path="/x", body=b"")


def test_generated_tokens_are_long_and_distinct() -> None:
    tokens = {generate_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 32 for t in tokens)


def test_access_key_round_trip() -> None:
    key = AccessKey("LTEASX", "secret")
    headers = sign_request(key, "POST", "/api/v1/services", "related=true", b"{}")
    key_id, signature = parse_authorization(headers["Authorization"]) or ("", "")
    assert key_id == "LTEASX"
    signed = {
        "date": headers["x-eas-date"],
        "nonce": headers["x-eas-nonce"],
        "content_sha256": headers["x-eas-content-sha256"],
    }
    assert signed["content_sha256"] == hashlib.sha256(b"{}").hexdigest()
    assert verify_request("secret", signature, "POST", "/api/v1/services", "related=true", **signed)
    assert not verify_request("secret", signature, "POST", "/api/v1/services", "", **signed)
    assert not verify_request(
        "wrong", signature, "POST", "/api/v1/services", "related=true", **signed
    )
    # The nonce and the body's digest are signed: neither can be swapped.
    for field, other in (("nonce", "A" * 24), ("content_sha256", "0" * 64)):
        assert not verify_request(
            "secret",
            signature,
            "POST",
            "/api/v1/services",
            "related=true",
            **{**signed, field: other},
        )


def test_access_key_signature_needs_fresh_well_formed_headers() -> None:
    key = AccessKey("LTEASX", "secret")
    stale = sign_request(key, "GET", "/p", "", date="Mon, 01 Jan 2024 00:00:00 GMT")
    assert "not within 900 s" in signed_headers_problem(
        stale["x-eas-date"], stale["x-eas-nonce"], stale["x-eas-content-sha256"]
    )
    fresh = sign_request(key, "GET", "/p", "")
    assert "x-eas-nonce" in signed_headers_problem(fresh["x-eas-date"], "short", EMPTY_SHA256)
    assert "x-eas-content-sha256" in signed_headers_problem(
        fresh["x-eas-date"], fresh["x-eas-nonce"], "xyz"
    )
    assert signed_headers_problem(fresh["x-eas-date"], fresh["x-eas-nonce"], EMPTY_SHA256) == ""
    # A streamed body is signed by its digest alone.
    digest = hashlib.sha256(b"big file").hexdigest()
    assert (
        sign_request(key, "POST", "/u", "", content_sha256=digest)["x-eas-content-sha256"] == digest
    )
