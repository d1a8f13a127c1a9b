"""Service tokens: what a caller of ``/api/predict/{service}`` presents (SPEC §5).

Two forms are accepted:

* plain — ``Authorization: <token>``;
* signed — ``Authorization: EAS <base64(HMAC-SHA1(token, "POST\\n" + Content-MD5 + "\\n" +
  Content-Type + "\\n" + Date + "\\n" + path))>``, what the official PAI-EAS SDKs send.
"""

from __future__ import annotations

import base64
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


def is_authorized(
    token: str | None,
    authorization: str | None,
    *,
    path: str,
    body: bytes,
    content_md5: str | None,
    content_type: str | None,
    date: str | None,
    max_skew: float | None = None,
) -> bool:
    """Does ``authorization`` prove knowledge of ``token`` for this request?

    ``token`` None means an open service. ``path`` is the request path without the query.
    Secrets are compared in constant time.
    """
    if token is None:
        return True
    if not authorization:
        return False
    if not authorization.startswith("EAS "):
        return hmac.compare_digest(authorization.encode(), token.encode())
    if content_md5 is None or date is None:
        return False
    # The signature covers Content-MD5; make sure that header describes this body.
    if not hmac.compare_digest(content_md5.lower(), hashlib.md5(body).hexdigest()):
        return False
    if max_skew is not None and not is_fresh(date, max_skew):
        return False
    expected = _signature(token, content_md5, content_type or DEFAULT_CONTENT_TYPE, date, path)
    return hmac.compare_digest(authorization[4:].strip().encode(), expected.encode())


def is_authorized_request(
    token: str | None,
    headers: Mapping[str, str],
    *,
    path: str,
    body: bytes,
    max_skew: float | None = None,
) -> bool:
    """:func:`is_authorized` with the values read from lower-cased request headers."""
    return is_authorized(
        token,
        headers.get("authorization"),
        path=path,
        body=body,
        content_md5=headers.get("content-md5"),
        content_type=headers.get("content-type"),
        date=headers.get("date"),
        max_skew=max_skew,
    )


def is_fresh(date: str, max_skew: float) -> bool:
    """Is the RFC 1123 ``date`` within ``max_skew`` seconds of now? (False if unreadable.)"""
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return abs((datetime.now(UTC) - when).total_seconds()) <= max_skew
