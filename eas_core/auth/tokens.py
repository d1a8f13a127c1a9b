"""Service tokens: what a caller of ``/api/predict/{service}`` presents (SPEC §5).

Two forms are accepted:

* plain — ``Authorization: <token>``;
* signed — ``Authorization: EAS <base64(HMAC-SHA1(token, "POST\\n" + Content-MD5 + "\\n" +
  Content-Type + "\\n" + Date + "\\n" + path))>``, what the official PAI-EAS SDKs send.

Checking is split in two so that a server can refuse a caller before reading its body:
:func:`verify_head` on the headers (the signature covers the Content-MD5 header's value),
then, for signed requests, :func:`body_matches` once the body is in.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def generate_token() -> str:
    """A random service token: 48 base64 characters, as PAI-EAS's look."""
    return base64.b64encode(secrets.token_bytes(36)).decode()


def sign(
    token: str,
    body: bytes,
    path: str,
    *,
    content_type: str = DEFAULT_CONTENT_TYPE,
    date: str | None = None,
) -> dict[str, str]:
    """Headers of a signed request, exactly as the official SDK builds them."""
    date = date or format_datetime(datetime.now(UTC), usegmt=True)
    content_md5 = hashlib.md5(body).hexdigest()
    signature = _signature(token, content_md5, content_type, date, path)
    return {
        "Authorization": f"EAS {signature}",
        "Content-MD5": content_md5,
        "Content-Type": content_type,
        "Date": date,
    }


def _signature(token: str, content_md5: str, content_type: str, date: str, path: str) -> str:
    message = f"POST\n{content_md5}\n{content_type}\n{date}\n{path}".strip()
    digest = hmac.new(token.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class HeadAuth(enum.Enum):
    """What a request's headers prove, before its body is read."""

    DENIED = "denied"
    GRANTED = "granted"  # open service, or the plain token
    SIGNED = "signed"  # a valid signature: its Content-MD5 must still match the body


def verify_head(
    token: str | None,
    headers: Mapping[str, str],
    *,
    path: str,
    max_skew: float | None = None,
) -> HeadAuth:
    """Authenticate a request on its lower-cased headers alone, so that a caller without
    the token is refused before its body is read.

    ``token`` None means an open service. ``path`` is the request path without the query.
    A signed request needs a parseable ``Date``, within ``max_skew`` seconds of now unless
    that is None or 0; its signature covers the ``Content-MD5`` header, which
    :func:`body_matches` then checks against the body. Secrets are compared in constant time.
    """
    if token is None:
        return HeadAuth.GRANTED
    authorization = headers.get("authorization")
    if not authorization:
        return HeadAuth.DENIED
    if not authorization.startswith("EAS "):
        granted = hmac.compare_digest(authorization.encode(), token.encode())
        return HeadAuth.GRANTED if granted else HeadAuth.DENIED
    content_md5 = headers.get("content-md5")
    date = headers.get("date")
    if content_md5 is None or date is None or not is_fresh(date, max_skew):
        return HeadAuth.DENIED
    content_type = headers.get("content-type") or DEFAULT_CONTENT_TYPE
    expected = _signature(token, content_md5, content_type, date, path)
    signed = hmac.compare_digest(authorization[4:].strip().encode(), expected.encode())
    return HeadAuth.SIGNED if signed else HeadAuth.DENIED


def body_matches(headers: Mapping[str, str], body: bytes) -> bool:
    """Does the signed ``Content-MD5`` header describe ``body``?"""
    content_md5 = headers.get("content-md5", "").lower().encode("latin-1")
    return hmac.compare_digest(content_md5, hashlib.md5(body).hexdigest().encode())


def is_authorized_request(
    token: str | None,
    headers: Mapping[str, str],
    *,
    path: str,
    body: bytes,
    max_skew: float | None = None,
) -> bool:
    """:func:`verify_head`, then for a signed request :func:`body_matches`."""
    verdict = verify_head(token, headers, path=path, max_skew=max_skew)
    return verdict is HeadAuth.GRANTED or (
        verdict is HeadAuth.SIGNED and body_matches(headers, body)
    )


def is_fresh(date: str, max_skew: float | None) -> bool:
    """Is the RFC 1123 ``date`` readable, and within ``max_skew`` seconds of now (any time
    when ``max_skew`` is None or 0)?"""
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    if not max_skew:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return abs((datetime.now(UTC) - when).total_seconds()) <= max_skew
