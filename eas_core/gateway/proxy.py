"""Forward one predict call to an instance, and to another one only when that is safe.

A call goes to another instance only when it cannot have reached a processor
(eas_core.http.upstream says how that is known): the instance could not be connected to,
reset the connection before reading all of the request, or answered that it cannot take
the call (450 queue full, 503 not ready). When the instance read the request and no answer
came — it closed the connection or died — the caller gets 502 naming the instance: the
request may be what killed it, and sending it on would take the next instance down too.
Everything else, a processor's own error codes included, is returned as the instance gave
it. Each failure and each retry is counted (GatewayMetrics).

Overload: when every instance the call was tried on answered 450 (queue full), the service is
overloaded, and trying again at once would only add to it — the caller gets 429 with
``Retry-After`` instead, so clients back off rather than retry in a loop.
"""

from __future__ import annotations

import logging

from eas_core.gateway.metrics import GatewayMetrics
from eas_core.gateway.table import CompiledRoute
from eas_core.http.server import Request, Response, text
from eas_core.http.upstream import UpstreamError, UpstreamPool, UpstreamResponse
from eas_core.spec.routes import Upstream
from eas_core.spec.status import QUEUE_FULL, SERVICE_UNAVAILABLE

log = logging.getLogger(__name__)

RETRY_STATUSES = {QUEUE_FULL: "queue_full", SERVICE_UNAVAILABLE: "unavailable"}
TOO_MANY_REQUESTS = 429
# Seconds an overloaded service's callers are told to wait: about one request's time at the
# processors' usual pace, so queues drain a little before the next try.
OVERLOAD_RETRY_AFTER = 1
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


def encode_head(
    request: Request,
    target: CompiledRoute,
    subpath: str,
    host: str,
    port: int,
    prefix: str = "/api/predict/",
) -> bytes:
    # prefix: /api/predict/, or /v2/models/ for the Open Inference Protocol.
    target_path = f"{prefix}{target.name}{subpath}"
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
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# The first try, picked before ``forward`` runs: the instance's index in the balancer, the
# instance, and how the try ended — None when it is still to be sent.
FirstTry = tuple[int, Upstream, UpstreamResponse | BaseException | None]


async def forward(
    pool: UpstreamPool,
    request: Request,
    target: CompiledRoute,
    subpath: str,
    *,
    prefix: str = "/api/predict/",
    retries: int,
    timeout: float,
    metrics: GatewayMetrics,
    first: FirstTry | None = None,
) -> Response:
    """Send the call to the target's instances until one answers it or it must not be
    sent again. ``first``: the instance the caller picked for the first try (the gateway's
    fast path), and how that try ended if it made it — judged here as if this function
    had made it."""
    service = target.name
    tried: set[int] = set()
    last: Response | None = None
    last_reason = ""
    full = 0  # instances that answered 450 to this call
    for _ in range(retries + 1):
        result: UpstreamResponse | BaseException | None = None
        if first is not None:
            index, upstream, result = first
            first = None
        else:
            picked = target.balancer.pick(tried)
            if picked is None:
                break
            index, upstream = picked
            if last is not None:
                metrics.retried(service, last_reason)
        if result is None:
            head = encode_head(request, target, subpath, upstream.host, upstream.port, prefix)
            try:
                result = await pool.send(upstream.host, upstream.port, head, request.body, timeout)
            except (UpstreamError, TimeoutError) as exc:
                result = exc
        tried.add(index)
        if isinstance(result, UpstreamError):
            metrics.failed(service, result.reason)
            log.info("instance %s %s", upstream.instance, result)
            if result.sent:
                return text(
                    502,
                    f"instance {upstream.instance} {result}; the request may have reached its "
                    "processor, so it was not sent to another instance",
                )
            last, last_reason = text(502, f"instance {upstream.instance} {result}"), result.reason
            continue
        if isinstance(result, BaseException):  # TimeoutError: the one other way a try ends
            metrics.failed(service, "timeout")
            return text(504, f"instance {upstream.instance} did not answer within {timeout:g} s")
        response = returned(result)
        reason = RETRY_STATUSES.get(result.status)
        if reason is not None:
            metrics.failed(service, reason)
            last, last_reason = response, reason
            full += result.status == QUEUE_FULL
            continue
        return response
    if last is not None and full == len(tried):
        return overloaded(service, full)
    if last is not None:
        return last
    return text(SERVICE_UNAVAILABLE, f"service {target.name!r} has no ready instance")


def returned(answer: UpstreamResponse) -> Response:
    """An instance's answer as the gateway hands it on."""
    headers = [(k, v) for k, v in answer.headers if k.lower() not in _NOT_RETURNED]
    return Response(answer.status, answer.body, headers=headers)


def overloaded(service: str, full: int) -> Response:
    answer = text(
        TOO_MANY_REQUESTS,
        f"service {service!r} is overloaded: {full} instance(s) answered 450 (queue full); "
        f"retry after {OVERLOAD_RETRY_AFTER} s",
    )
    answer.headers.append(("retry-after", str(OVERLOAD_RETRY_AFTER)))
    return answer
