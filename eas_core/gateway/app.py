"""The gateway process: predict proxying, service discovery, and the route-table push.

Paths:
  POST|GET|… /api/predict/{service}[/sub/path][?query]   → an instance of the service
  GET /api/v1/servicediscovery/upstreams/{service}        → ready instances (direct callers)
  GET /exported/apis/eas.alibaba-inc.k8s.io/v1/upstreams/{service}   (older spelling)
  GET|POST /v2/models/{service}[/versions/{v}][/ready|/infer]  → an instance of the service
  GET /v2/health/live | ready                             → the gateway itself (no token)
  GET /api/builtin/ping | ready | metrics
  PUT /api/internal/routes                                → the controller's push
  GET /api/internal/shadow/{service}[?limit=N]            → the service's mirrored pairs
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import socket
import time
from typing import cast
from urllib.parse import parse_qs

import uvloop

from eas_core.auth.tokens import HeadAuth, body_matches, verify_head
from eas_core.config import GatewaySettings
from eas_core.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from eas_core.gateway.proxy import RETRY_STATUSES, FirstTry, encode_head, forward, returned
from eas_core.gateway.shadow import Mirror
from eas_core.gateway.table import CompiledRoute, RouteTableHolder
from eas_core.gateway.waking import Waker
from eas_core.http.limits import limits_from
from eas_core.http.server import DEFERRED, HttpServer, Request, Responder, Response, text
from eas_core.http.upstream import UpstreamPool, UpstreamResponse
from eas_core.spec.paths import (
    INTERNAL_TOKEN_HEADER,
    METRICS_PATH,
    PING_PATH,
    READY_PATH,
    ROUTES_PATH,
    SHADOW_PATH,
)
from eas_core.spec.routes import RouteTable
from eas_core.spec.status import NOT_FOUND, SERVICE_UNAVAILABLE, UNAUTHORIZED

log = logging.getLogger(__name__)

PREDICT = "/api/predict/"
# The Open Inference Protocol's model paths: the model name is the service name, and the call
# goes to the service's instances as a predict call does (token, balancing, retries).
V2_MODELS = "/v2/models/"
V2_HEALTH = ("/v2/health/live", "/v2/health/ready")
DISCOVERY = (
    "/api/v1/servicediscovery/upstreams/",
    "/exported/apis/eas.alibaba-inc.k8s.io/v1/upstreams/",
)
JSON = "application/json"


class GatewayApp:
    def __init__(self, settings: GatewaySettings, internal_token: str) -> None:
        self.settings = settings
        self.internal_token = internal_token
        self.table = RouteTableHolder(settings.data_dir / "gateway" / "routes.json")
        self.pool = UpstreamPool(idle_timeout=settings.upstream_idle_timeout)
        self.metrics = GatewayMetrics()
        self.waker = Waker(
            settings.controller_urls,
            internal_token,
            timeout=settings.wake_timeout,
            max_held=settings.wake_max_held,
        )
        self.mirror = Mirror(
            self.pool,
            self.table,
            self.metrics,
            max_in_flight=settings.shadow_max_in_flight,
            max_bytes=settings.shadow_max_bytes,
            timeout=settings.shadow_timeout,
            ring_size=settings.shadow_ring_size,
            body_bytes=settings.shadow_body_bytes,
        )

    def check_head(self, request: Request) -> Response | None:
        """The HTTP server's look at a request's head, before its body is read: a caller
        without the token is refused here and its body never buffered."""
        path = request.path
        prefix = routed_prefix(path)
        if prefix is not None:
            refusal = self.authenticate(request)
            if refusal is not None:
                self.count(path[len(prefix) :].partition("/")[0], refusal.status)
                if prefix == V2_MODELS:
                    return v2_error(refusal)
            return refusal
        if (path == ROUTES_PATH or path.startswith(SHADOW_PATH)) and not self.is_internal(request):
            return text(UNAUTHORIZED, "invalid internal token")
        return None

    def authenticate(self, request: Request) -> Response | None:
        """Find the called service and check the caller's token on the headers; the route
        and the verdict are kept on the request for the handler."""
        prefix = routed_prefix(request.path) or PREDICT
        name = request.path[len(prefix) :].partition("/")[0]
        route = self.table.get(name)
        if route is None:
            return text(NOT_FOUND, f"service {name!r} not found")
        if route.released_into is not None:
            return text(
                NOT_FOUND,
                f"service {name!r} was released into {route.released_into!r}: it serves its "
                f"share at /api/predict/{route.released_into} (see `eascmd desc {name}`)",
            )
        verdict = verify_head(
            route.token,
            request.headers,
            path=request.path,
            max_skew=self.settings.signature_max_skew,
        )
        if verdict is HeadAuth.DENIED:
            return text(UNAUTHORIZED, "invalid or missing token")
        request.context = (route, verdict)
        return None

    def immediate(self, request: Request, responder: Responder) -> Response | None:
        """The fast path of a predict call (see ``eas_core.http.server``): sent to an
        instance over an idle pooled connection from the parser's callback, and its answer
        handed back from the upstream connection's, with no task in between. Whatever this
        path does not cover — a signed or bodiless call, a mirrored service, a service with
        no ready instance — takes ``handle``. Once an instance is picked here the call stays
        with it: a try made here counts as the call's first, and with no idle connection to
        that instance, or after a failed try, ``forward`` goes on from there."""
        context = request.context
        if context is None or not request.path.startswith(PREDICT):
            return None
        route, verdict = cast(tuple[CompiledRoute, HeadAuth], context)
        if verdict is not HeadAuth.GRANTED or route.route.shadow is not None:
            return None
        target = self.pick_target(route)
        if target is None:
            return None
        picked = target.balancer.pick()
        if picked is None:
            return None
        index, upstream = picked
        name, sep, rest = request.path[len(PREDICT) :].partition("/")
        subpath = sep + rest
        head = encode_head(request, target, subpath, upstream.host, upstream.port)

        def done(result: UpstreamResponse | BaseException) -> None:
            if isinstance(result, UpstreamResponse) and result.status not in RETRY_STATUSES:
                response = returned(result)
                self.count(name, response.status)
                responder.respond(request, response)
                return
            asyncio.get_running_loop().create_task(
                self.finish(request, responder, name, target, subpath, (index, upstream, result))
            )

        timeout = self.settings.upstream_timeout
        if not self.pool.send_pooled(
            upstream.host, upstream.port, head, request.body, timeout, done
        ):
            # No idle connection to that instance: the general path connects, to the same
            # instance (picking again would move the balancers twice for one call).
            asyncio.get_running_loop().create_task(
                self.finish(request, responder, name, target, subpath, (index, upstream, None))
            )
        return DEFERRED

    async def finish(
        self,
        request: Request,
        responder: Responder,
        name: str,
        target: CompiledRoute,
        subpath: str,
        first: FirstTry,
    ) -> None:
        """A call whose first try on the fast path did not end it: the general path goes on
        from there (another instance, or the error the caller gets)."""
        try:
            response = await forward(
                self.pool,
                request,
                target,
                subpath,
                retries=self.settings.retries,
                timeout=self.settings.upstream_timeout,
                metrics=self.metrics,
                first=first,
            )
        except Exception:
            log.exception("forwarding failed for %s", request.path)
            response = text(500, "internal error", close=True)
        self.count(name, response.status)
        responder.respond(request, response)

    async def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith(PREDICT):
            name, sep, rest = path[len(PREDICT) :].partition("/")
            response = await self.predict(request, sep + rest)
            self.count(name, response.status)
            return response
        if path.startswith(V2_MODELS):
            name, sep, rest = path[len(V2_MODELS) :].partition("/")
            response = v2_error(await self.predict(request, sep + rest, prefix=V2_MODELS))
            self.count(name, response.status)
            return response
        if path in V2_HEALTH:
            # Live while it answers; ready once it has a route table to send calls by.
            ready = path.endswith("live") or self.table.loaded
            key = path.rpartition("/")[2]
            return Response(200 if ready else 400, json.dumps({key: ready}).encode(), JSON)
        for prefix in DISCOVERY:
            if path.startswith(prefix):
                return self.discover(path[len(prefix) :].split("/")[0])
        if path == ROUTES_PATH:
            return self.routes(request)
        if path.startswith(SHADOW_PATH):
            return self.shadow(request, path[len(SHADOW_PATH) :])
        if path == PING_PATH:
            return text(200, "pong")
        if path == READY_PATH:
            return (
                text(200, "ready")
                if self.table.loaded
                else text(SERVICE_UNAVAILABLE, "no route table yet")
            )
        if path == METRICS_PATH:
            return Response(200, self.metrics.render(), CONTENT_TYPE)
        return text(NOT_FOUND, f"no such path {path!r}")

    def count(self, name: str, status: int) -> None:
        # Names come from callers: unknown ones share one label, so the series stay few.
        self.metrics.answered(name if name in self.table.routes else "_unknown", status)

    async def predict(self, request: Request, subpath: str, prefix: str = PREDICT) -> Response:
        if request.context is None:  # no body, so the server did not check the head
            refusal = self.authenticate(request)
            if refusal is not None:
                return refusal
        route, verdict = cast(tuple[CompiledRoute, HeadAuth], request.context)
        if verdict is HeadAuth.SIGNED and not body_matches(request.headers, request.body):
            return text(UNAUTHORIZED, "the signed Content-MD5 header does not match the body")
        target = self.pick_target(route)
        if target is None and route.route.wakes:
            name = route.name

            def ready() -> CompiledRoute | None:
                current = self.table.get(name)
                return self.pick_target(current) if current is not None else None

            waited = await self.waker.wait(name, ready)
            if isinstance(waited, Response):
                return waited
            target = waited
        if target is None:
            return text(SERVICE_UNAVAILABLE, f"service {route.name!r} has no ready instance")
        start = time.perf_counter()
        answer = await forward(
            self.pool,
            request,
            target,
            subpath,
            prefix=prefix,
            retries=self.settings.retries,
            timeout=self.settings.upstream_timeout,
            metrics=self.metrics,
        )
        if route.route.shadow is not None:
            # The copy starts only after this handler returns and the answer is written.
            self.mirror.after_answer(
                route, request, subpath, prefix, answer, time.perf_counter() - start
            )
        return answer

    def pick_target(self, route: CompiledRoute) -> CompiledRoute | None:
        """The service whose instances answer this call: the route itself, or for a
        blue-green split the side the weights pick — the other side when that one has no
        ready instance, so a split never turns into errors."""
        if route.split is None:
            return route if len(route.balancer) else None
        picked = route.split.pick()
        names = [picked[1]] if picked else []
        names += [n for n in route.split.items if n not in names]
        for name in names:
            target = self.table.get(name)
            if target is not None and len(target.balancer):
                return target
        return None

    def discover(self, name: str) -> Response:
        document = self.table.discovery(name)
        if document is None:
            return text(NOT_FOUND, f"service {name!r} not found")
        return Response(200, json.dumps(document).encode(), JSON)

    def is_internal(self, request: Request) -> bool:
        presented = request.headers.get(INTERNAL_TOKEN_HEADER, "")
        return hmac.compare_digest(presented.encode(), self.internal_token.encode())

    def routes(self, request: Request) -> Response:
        if not self.is_internal(request):
            return text(UNAUTHORIZED, "invalid internal token")
        if request.method == "GET":
            return Response(200, self.table.to_json(), JSON)
        if request.method != "PUT":
            return text(405, "use GET or PUT")
        try:
            table = RouteTable.model_validate_json(request.body)
        except ValueError as exc:
            return text(400, f"invalid route table: {exc}")
        old = {(u.host, u.port) for r in self.table.table.services.values() for u in r.upstreams}
        accepted = self.table.install(table)
        if accepted:
            new = {(u.host, u.port) for r in table.services.values() for u in r.upstreams}
            for host, port in old - new:
                self.pool.forget(host, port)
            self.mirror.forget_others(set(table.services))
        return Response(200, self.table.to_json(), JSON)

    def shadow(self, request: Request, name: str) -> Response:
        if not self.is_internal(request):
            return text(UNAUTHORIZED, "invalid internal token")
        if request.method != "GET":
            return text(405, "use GET")
        limit = 100
        for value in parse_qs(request.query).get("limit", []):
            if not value.isdigit():
                return text(400, f"limit: {value!r} must be a whole number of pairs, 0 or more")
            # More than the ring holds gives all of it.
            limit = min(int(value), self.settings.shadow_ring_size)
        record = self.mirror.record(name, limit)
        return Response(200, record.model_dump_json(by_alias=True).encode(), JSON)


def routed_prefix(path: str) -> str | None:
    """The prefix before the service name of a path sent on to a service's instances."""
    if path.startswith(PREDICT):
        return PREDICT
    if path.startswith(V2_MODELS):
        return V2_MODELS
    return None


def v2_error(response: Response) -> Response:
    """A refusal on a protocol path as the protocol's ``{"error": "..."}`` (what an instance
    answers is JSON already; the gateway's own refusals are text)."""
    if response.status < 400 or response.content_type == JSON:
        return response
    if any(k.lower() == "content-type" and v.startswith(JSON) for k, v in response.headers):
        return response
    message = response.body.decode("utf-8", errors="replace")
    body = json.dumps({"error": message}).encode()
    headers = [(k, v) for k, v in response.headers if k.lower() != "content-type"]
    return Response(response.status, body, JSON, headers, response.close)


async def run(settings: GatewaySettings) -> None:
    app = GatewayApp(settings, settings.internal_token())
    app.table.load_persisted()
    server = HttpServer(
        app.handle,
        max_body_bytes=settings.max_body_bytes,
        limits=limits_from(settings),
        check_head=app.check_head,
        immediate=app.immediate,
    )
    sock = None
    if settings.gateway_fd is not None:
        # The installation's listening socket: it outlives this process, so callers that
        # connect while a gateway restarts wait in its backlog instead of being refused.
        sock = socket.socket(fileno=settings.gateway_fd)
        sock.setblocking(False)
    await server.serve(settings.host, settings.gateway_port, sock=sock)
    log.info("gateway listening on %s:%d", settings.host, server.port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.drain(timeout=5.0)
    await app.mirror.close()
    app.pool.close()
    await app.waker.close()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(levelname)s] gateway: %(message)s"
    )
    uvloop.run(run(GatewaySettings()))


if __name__ == "__main__":
    main()
