"""Access-key authentication of control-API callers (signed requests, see auth.keys)."""

from __future__ import annotations

from fastapi import Request

from eas_core.auth.keys import DATE_HEADER, parse_authorization, verify_request
from eas_core.controller.store import Repository
from eas_core.errors import Unauthorized


async def authenticate(request: Request) -> str:
    """The caller's access key id; raises Unauthorized unless the signature checks out."""
    repo: Repository = request.app.state.repo
    parsed = parse_authorization(request.headers.get("authorization"))
    if parsed is None:
        raise Unauthorized("missing access key signature (run `eascmd config -i ID -k SECRET`)")
    key_id, signature = parsed
    secret = repo.access_key_secret(key_id)
    body = await request.body()
    if secret is None or not verify_request(
        secret,
        signature,
        request.method,
        request.url.path,
        request.url.query,
        body,
        request.headers.get(DATE_HEADER),
    ):
        raise Unauthorized(f"access key {key_id!r} is unknown or the request signature is wrong")
    return key_id
