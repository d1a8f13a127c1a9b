"""Access-key authentication of control-API callers (signed requests, see auth.keys).

``SignedRequests`` is an ASGI middleware in front of every ``/api/v1`` route but the health
check. It decides on the headers alone, before the body is read: an unknown key, a wrong or
stale signature or a replayed nonce is answered 401 with the body unread, and a declared
``Content-Length`` over the route's limit 413. Then the body is let through only as far as
the limit, and checked against the signed ``x-eas-content-sha256``: JSON calls (at most
``json_limit`` bytes) are read whole and checked before the route sees them; an upload
streams through to the route, counted and hashed on the way, and its last chunk is held
back unless the digest matches, so a route never commits a body that was not signed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import anyio.to_thread
from fastapi import Request
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eas_core.auth.keys import (
    CONTENT_SHA256_HEADER,
    DATE_HEADER,
    MAX_SKEW_SECONDS,
    NONCE_HEADER,
    parse_authorization,
    signed_headers_problem,
    verify_request,
)
from eas_core.controller.store import Repository
from eas_core.errors import BadRequest, EASError, PayloadTooLarge, Unauthorized, Unavailable

PROTECTED_PREFIX = "/api/v1/"
# Prometheus discovery takes a bearer token of its own (eas_core.controller.api.prometheus).
OPEN_PATHS = frozenset({"/api/v1/health", "/api/v1/leader", "/api/v1/prometheus/targets"})
UPLOAD_PATH = "/api/v1/artefacts"
STATE_KEY = "access_key"


class ReplayGuard:
    """The nonces of accepted signatures, per access key, for as long as those signatures
    could still be fresh; a second request with the same (key, nonce) is a replay.

    Bounded: past ``capacity`` remembered nonces new requests are refused (503) until old
    ones expire, rather than forgetting nonces that could still be replayed. Only requests
    whose signature checked out are remembered, so only key holders can fill it."""

    def __init__(self, *, capacity: int, window: float = 2 * MAX_SKEW_SECONDS) -> None:
        # A date may be up to the skew ahead of our clock and stays fresh until the skew
        # past it: a nonce must be kept that long after it is first seen.
        self.window = window
        self.capacity = capacity
        self.expiry: dict[tuple[str, str], float] = {}  # insertion order = expiry order
        self.lock = threading.Lock()

    def remember(self, key_id: str, nonce: str) -> None:
        now = time.monotonic()
        with self.lock:
            while self.expiry:  # oldest first: stop at the first one still live
                seen, until = next(iter(self.expiry.items()))
                if until > now:
                    break
                del self.expiry[seen]
            if (key_id, nonce) in self.expiry:
                raise Unauthorized(
                    f"{NONCE_HEADER}: replayed request (nonce {nonce!r} of access key "
                    f"{key_id!r} was already used); sign every request anew"
                )
            if len(self.expiry) >= self.capacity:
                raise Unavailable(
                    f"more than {self.capacity} signed requests within "
                    f"{self.window:g} s; retry later"
                )
            self.expiry[(key_id, nonce)] = now + self.window


class SignedRequests:
    def __init__(
        self,
        app: ASGIApp,
        *,
        repo: Repository,
        guard: ReplayGuard,
        json_limit: int,
        upload_limit: int,
    ) -> None:
        self.app = app
        self.repo = repo
        self.guard = guard
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not path.startswith(PROTECTED_PREFIX)
            or path.rstrip("/") in OPEN_PATHS
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        is_upload = scope["method"] == "POST" and path.rstrip("/") == UPLOAD_PATH
        limit = self.upload_limit if is_upload else self.json_limit
        try:
            key_id = await self._authenticate(scope, headers)
            declared = _content_length(headers)
            if declared is not None and declared > limit:
                raise PayloadTooLarge(
                    f"body: {declared} bytes, over the limit of {limit} bytes for this call"
                )
            expected = headers[CONTENT_SHA256_HEADER]
            if is_upload:
                receive = _checked_stream(receive, limit, expected)
            else:
                body = await _read(receive, limit)
                _check_digest(hashlib.sha256(body).hexdigest(), expected)
                receive = _replay(body, receive)
        except EASError as exc:
            await JSONResponse(exc.to_dict(), status_code=exc.status)(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = key_id
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, headers: Headers) -> str:
        parsed = parse_authorization(headers.get("authorization"))
        if parsed is None:
            raise Unauthorized("missing access key signature (run `eascmd config -i ID -k SECRET`)")
        key_id, signature = parsed
        date = headers.get(DATE_HEADER)
        nonce = headers.get(NONCE_HEADER)
        digest = headers.get(CONTENT_SHA256_HEADER)
        problem = signed_headers_problem(date, nonce, digest)
        if problem:
            raise Unauthorized(f"access key {key_id!r}: {problem}")
        secret = await anyio.to_thread.run_sync(self.repo.access_key_secret, key_id)
        query = scope.get("query_string", b"").decode("latin-1")
        if secret is None or not verify_request(
            secret,
            signature,
            scope["method"],
            scope["path"],
            query,
            date=date,
            nonce=nonce,
            content_sha256=digest,
        ):
            raise Unauthorized(
                f"access key {key_id!r} is unknown or the request signature is wrong"
            )
        assert nonce is not None
        self.guard.remember(key_id, nonce)
        return key_id


def _content_length(headers: Headers) -> int | None:
    raw = headers.get("content-length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise BadRequest(f"content-length: {raw!r} is not a byte count")
    return int(raw)


def _check_digest(actual: str, expected: str) -> None:
    if actual != expected:
        raise Unauthorized(
            f"{CONTENT_SHA256_HEADER}: the body's sha256 is {actual}, not the signed {expected}"
        )


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadRequest("body: the client went away before sending all of it")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: over the limit of {limit} bytes for this call")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # only a disconnect can follow

    return replay


def _checked_stream(receive: Receive, limit: int, expected: str) -> Receive:
    digest = hashlib.sha256()
    size = 0

    async def checked() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body: over the limit of {limit} bytes for an upload")
            digest.update(chunk)
            if not message.get("more_body", False):
                _check_digest(digest.hexdigest(), expected)
        return message

    return checked


def authenticated(request: Request) -> str:
    """A route dependency: the caller's access key id, set by ``SignedRequests``. Refuses
    the request if the middleware did not run (a route mounted outside its prefix)."""
    state: dict[str, Any] = request.scope.get("state", {})
    key_id = state.get(STATE_KEY)
    if not isinstance(key_id, str):
        raise Unauthorized("this route is not behind access-key authentication")
    return key_id
