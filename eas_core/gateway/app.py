"""The gateway process: predict proxying, service discovery, and the route-table push.

Paths:
  POST|GET|… /api/predict/{service}[/sub/path][?query]   → an instance of the service
  GET /api/v1/servicediscovery/upstreams/{service}        → ready instances (direct callers)
  GET /exported/apis/eas.alibaba-inc.k8s.io/v1/upstreams/{service}   (older spelling)
  GET /api/builtin/ping | ready | metrics
  PUT /api/internal/routes                                → the controller's push
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import socket
from typing import cast

import uvloop

from eas_core.auth.tokens import HeadAuth, body_matches, verify_head
from eas_core.config import GatewaySettings
from eas_core.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from eas_core.gateway.proxy import forward
from eas_core.gateway.table import CompiledRoute, RouteTableHolder
from eas_core.http.limits import limits_from
from eas_core.http.server import HttpServer, Request, Response, text
from eas_core.http.upstream import UpstreamPool
from eas_core.spec.paths import (
    INTERNAL_TOKEN_HEADER,
    METRICS_PATH,
    PING_PATH,
    READY_PATH,
    ROUTES_PATH,
)
from eas_core.spec.routes import RouteTable
from eas_core.spec.status import NOT_FOUND, SERVICE_UNAVAILABLE, UNAUTHORIZED

log = logging.getLogger(__name__)

PREDICT = "/api/predict/"
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

    def check_head(self, request: Request) -> Response | None:
        """The HTTP server's look at a request's head, before its body is read: a caller
        without the token is refused here and its body never buffered."""
        path = request.path
        if path.startswith(PREDICT):
            refusal = self.authenticate(request)
            if refusal is not None:
                self.count(path[len(PREDICT) :].partition("/")[0], refusal.status)
            return refusal
        if path == ROUTES_PATH and not self.is_internal(request):
            return text(UNAUTHORIZED, "invalid internal token")
        return None

    def authenticate(self, request: Request) -> Response | None:
        """Find the called service and check the caller's token on the headers; the route
        and the verdict are kept on the request for the handler."""
        name = request.path[len(PREDICT) :].partition("/")[0]
        route = self.table.get(name)
        if route is None or route.released_into is not None:
            return text(NOT_FOUND, f"service {name!r} not found")
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

    async def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith(PREDICT):
            name, sep, rest = path[len(PREDICT) :].partition("/")
            response = await self.predict(request, sep + rest)
            self.count(name, response.status)
            return response
        for prefix in DISCOVERY:
            if path.startswith(prefix):
                return self.discover(path[len(prefix) :].split("/")[0])
        if path == ROUTES_PATH:
            return self.routes(request)
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

    async def predict(self, request: Request, subpath: str) -> Response:
        if request.context is None:  # no body, so the server did not check the head
            refusal = self.authenticate(request)
            if refusal is not None:
                return refusal
        route, verdict = cast(tuple[CompiledRoute, HeadAuth], request.context)
        if verdict is HeadAuth.SIGNED and not body_matches(request.headers, request.body):
            return text(UNAUTHORIZED, "the signed Content-MD5 header does not match the body")
        target = self.pick_target(route)
        if target is None:
            return text(SERVICE_UNAVAILABLE, f"service {route.name!r} has no ready instance")
        return await forward(
            self.pool,
            request,
            target,
            subpath,
            retries=self.settings.retries,
            timeout=self.settings.upstream_timeout,
            metrics=self.metrics,
        )

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
        return Response(200, self.table.to_json(), JSON)


async def run(settings: GatewaySettings) -> None:
    app = GatewayApp(settings, settings.internal_token())
    app.table.load_persisted()
    server = HttpServer(
        app.handle,
        max_body_bytes=settings.max_body_bytes,
        limits=limits_from(settings),
        check_head=app.check_head,
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
    app.pool.close()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(levelname)s] gateway: %(message)s"
    )
    uvloop.run(run(GatewaySettings()))


if __name__ == "__main__":
    main()
