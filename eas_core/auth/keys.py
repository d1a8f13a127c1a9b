"""Access keys: how callers of the control API (eascmd, SDK, pipelines) authenticate.

A request carries ``Authorization: EAS-HMAC-SHA256 <key id>:<signature>`` and three headers
the signature covers: ``x-eas-date`` (RFC 1123, UTC), ``x-eas-nonce`` (random, once per
request) and ``x-eas-content-sha256`` (hex sha256 of the body). The signature is

    base64(HMAC-SHA256(secret, METHOD \\n path \\n query \\n date \\n nonce \\n content-sha256))

It covers the body's digest rather than the body itself, so a server checks who is calling
from the headers alone, before it reads a byte of the body, and then checks the body
against the signed digest while it streams it in. The date bounds how long a signature is
good for; the nonce lets the server refuse a captured request replayed within that time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from eas_core.auth.tokens import is_fresh
from eas_core.spec.paths import CONTENT_SHA256_HEADER, DATE_HEADER, NONCE_HEADER

SCHEME = "EAS-HMAC-SHA256"
MAX_SKEW_SECONDS = 900.0
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AccessKey:
    id: str
    secret: str


def generate_access_key() -> AccessKey:
    return AccessKey(id="LTEAS" + secrets.token_hex(8).upper(), secret=secrets.token_urlsafe(30))


def generate_nonce() -> str:
    return secrets.token_urlsafe(18)


def _string_to_sign(
    method: str, path: str, query: str, date: str, nonce: str, content_sha256: str
) -> bytes:
    return "\n".join([method.upper(), path, query, date, nonce, content_sha256]).encode()


def _signature(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, "sha256").digest()).decode()


def sign_request(
    key: AccessKey,
    method: str,
    path: str,
    query: str,
    body: bytes = b"",
    *,
    content_sha256: str | None = None,
    date: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign one request. ``content_sha256`` replaces ``body`` for a body
    that is streamed (hash the file first, then send it)."""
    date = date or format_datetime(datetime.now(UTC), usegmt=True)
    nonce = nonce or generate_nonce()
    digest = content_sha256 or hashlib.sha256(body).hexdigest()
    signature = _signature(key.secret, _string_to_sign(method, path, query, date, nonce, digest))
    return {
        "Authorization": f"{SCHEME} {key.id}:{signature}",
        DATE_HEADER: date,
        NONCE_HEADER: nonce,
        CONTENT_SHA256_HEADER: digest,
    }


def parse_authorization(header: str | None) -> tuple[str, str] | None:
    """``(key id, signature)`` from the header, or None when it is not ours."""
    if not header or not header.startswith(SCHEME + " "):
        return None
    key_id, _, signature = header[len(SCHEME) + 1 :].strip().partition(":")
    return (key_id, signature) if key_id and signature else None


def signed_headers_problem(date: str | None, nonce: str | None, content_sha256: str | None) -> str:
    """What is wrong with the signed headers themselves ("" when nothing is)."""
    if not date:
        return f"missing {DATE_HEADER}"
    if not is_fresh(date, MAX_SKEW_SECONDS):
        return f"{DATE_HEADER} {date!r} is not within {MAX_SKEW_SECONDS:g} s of the server's clock"
    if not nonce or not NONCE_PATTERN.match(nonce):
        return f"{NONCE_HEADER} must be 16 to 64 characters of [A-Za-z0-9_-]"
    if not content_sha256 or not _SHA256_HEX.match(content_sha256):
        return f"{CONTENT_SHA256_HEADER} must be the body's sha256 in lowercase hex"
    return ""


def verify_request(
    secret: str,
    signature: str,
    method: str,
    path: str,
    query: str,
    *,
    date: str | None,
    nonce: str | None,
    content_sha256: str | None,
) -> bool:
    """Does the signature prove knowledge of ``secret`` for these headers (fresh, well
    formed)? The body is checked against ``content_sha256`` separately, as it arrives."""
    if signed_headers_problem(date, nonce, content_sha256):
        return False
    assert date is not None and nonce is not None and content_sha256 is not None
    expected = _signature(secret, _string_to_sign(method, path, query, date, nonce, content_sha256))
    return hmac.compare_digest(expected.encode(), signature.encode())
