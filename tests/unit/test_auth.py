"""Token and access-key signatures, checked against the official SDK's own construction."""

from __future__ import annotations

import base64
import hashlib
import hmac

from eas_core.auth.keys import AccessKey, parse_authorization, sign_request, verify_request
from eas_core.auth.tokens import generate_token, is_authorized, sign


def sdk_signature(token: str, body: bytes, content_type: str, date: str, resource: str) -> str:
    """What eas_prediction's PredictClient.generate_singaure computes."""
    md5 = hashlib.md5(body).hexdigest()
    auth = f"POST\n{md5}\n{content_type}\n{date}\n{resource}"
    mac = hmac.new(bytearray(token, "utf-8"), bytearray(auth.strip(), "utf-8"), hashlib.sha1)
    return "EAS " + base64.b64encode(mac.digest()).decode().strip()


def check(token: str, headers: dict[str, str], body: bytes, path: str) -> bool:
    return is_authorized(
        token,
        headers.get("Authorization"),
        path=path,
        body=body,
        content_md5=headers.get("Content-MD5"),
        content_type=headers.get("Content-Type"),
        date=headers.get("Date"),
    )


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
    assert is_authorized(
        None, None, path="/x", body=b"", content_md5=None, content_type=None, date=None
    )


def test_generated_tokens_are_long_and_distinct() -> None:
    tokens = {generate_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 32 for t in tokens)


def test_access_key_round_trip() -> None:
    key = AccessKey("LTEASX", "secret")
    headers = sign_request(key, "POST", "/api/v1/services", "related=true", b"{}")
    key_id, signature = parse_authorization(headers["Authorization"]) or ("", "")
    assert key_id == "LTEASX"
    date = headers["x-eas-date"]
    assert verify_request(
        "secret", signature, "POST", "/api/v1/services", "related=true", b"{}", date
    )
    assert not verify_request("secret", signature, "POST", "/api/v1/services", "", b"{}", date)
    assert not verify_request(
        "wrong", signature, "POST", "/api/v1/services", "related=true", b"{}", date
    )
