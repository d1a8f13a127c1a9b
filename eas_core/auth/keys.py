"""Access keys: how callers of the control API (eascmd, SDK, pipelines) authenticate.

A request carries ``x-eas-date`` (RFC 1123, UTC) and
``Authorization: EAS-HMAC-SHA256 <key id>:<signature>`` where the signature is
``base64(HMAC-SHA256(secret, METHOD \\n path \\n query \\n date \\n sha256(body)))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from eas_core.auth.tokens import is_fresh

SCHEME = "EAS-HMAC-SHA256"
DATE_HEADER = "x-eas-date"
MAX_SKEW_SECONDS = 900.0


@dataclass(frozen=True)
class AccessKey:
    id: str
    secret: str


def generate_access_key() -> AccessKey:
    return AccessKey(id="LTEAS" + secrets.token_hex(8).upper(), secret=secrets.token_urlsafe(30))


def _string_to_sign(method: str, path: str, query: str, date: str, body: bytes) -> bytes:
    return "\n".join([method.upper(), path, query, date, hashlib.sha256(body).hexdigest()]).encode()


def sign_request(
    key: AccessKey, method: str, path: str, query: str, body: bytes, *, date: str | None = None
) -> dict[str, str]:
    date = date or format_datetime(datetime.now(UTC), usegmt=True)
    mac = hmac.new(key.secret.encode(), _string_to_sign(method, path, query, date, body), "sha256")
    signature = base64.b64encode(mac.digest()).decode()
    return {"Authorization": f"{SCHEME} {key.id}:{signature}", DATE_HEADER: date}


def parse_authorization(header: str | None) -> tuple[str, str] | None:
    """``(key id, signature)`` from the header, or None when it is not ours."""
    if not header or not header.startswith(SCHEME + " "):
        return None
    key_id, _, signature = header[len(SCHEME) + 1 :].strip().partition(":")
    return (key_id, signature) if key_id and signature else None


def verify_request(
    secret: str,
    signature: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
    date: str | None,
) -> bool:
    if not date or not is_fresh(date, MAX_SKEW_SECONDS):
        return False
    mac = hmac.new(secret.encode(), _string_to_sign(method, path, query, date, body), "sha256")
    expected = base64.b64encode(mac.digest()).decode()
    return hmac.compare_digest(expected.encode(), signature.encode())
