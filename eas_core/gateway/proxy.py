"""Forward one predict call to an instance, retrying another one when that is safe to do.

Retried: a connection that fails or closes without an answer, and the answers an instance
gives when it cannot take the request (450 queue full, 503 not ready). Everything else —
including a processor's own error codes — is returned as the instance gave it.
"""

from __future__ import annotations

import logging

from eas_core.gateway.table import CompiledRoute
from eas_core.http.server import Request, Response, text
from eas_core.http.upstream import UpstreamError, UpstreamPool
from eas_core.spec.status import QUEUE_FULL, SERVICE_UNAVAILABLE

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({QUEUE_FULL, SERVICE_UNAVAILABLE})
# Hop-by-hop headers and those the gateway sets itself.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "host",
        "authorization",
        "expect",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    }
)
_NOT_RETURNED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


def encode_request(
    request: Request, target: CompiledRoute, subpath: str, host: str, port: int
) -> bytes:
    target_path = f"/api/predict/{target.name}{subpath}"
    if request.query:
        target_path += "?" + request.query
    lines = [
        f"{request.method} {target_path} HTTP/1.1",
        f"host: {host}:{port}",
        f"content-length: {len(request.body)}",
    ]
    if target.token is not None:
        lines.append(f"authorization: {target.token}")
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k not in _NOT_FORWARDED]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


async def forward(
    pool: UpstreamPool,
    request: Request,
    target: CompiledRoute,
    subpath: str,
    *,
    retries: int,
    timeout: float,
) -> Response:
    tried: set[int] = set()
    last: Response | None = None
    for _ in range(retries + 1):
        picked = target.balancer.pick(tried)
        if picked is None:
            break
        index, upstream = picked
        tried.add(index)
        data = encode_request(request, target, subpath, upstream.host, upstream.port)
        try:
            answer = await pool.send(upstream.host, upstream.port, data, timeout)
        except UpstreamError as exc:
            log.info("instance %s failed: %s", upstream.instance, exc)
            last = text(502, f"instance {upstream.instance} failed: {exc}")
            continue
        except TimeoutError:
            return text(504, f"instance {upstream.instance} did not answer within {timeout:g} s")
        headers = [(k, v) for k, v in answer.headers if k.lower() not in _NOT_RETURNED]
        response = Response(answer.status, answer.body, headers=headers)
        if answer.status in RETRY_STATUSES:
            last = response
            continue
        return response
    if last is not None:
        return last
    return text(SERVICE_UNAVAILABLE, f"service {target.name!r} has no ready instance")
