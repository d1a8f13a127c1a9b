"""The gateway's mirror over real loopback sockets: which calls are copied, the bounds on
copies in flight and bytes held, and the pairs kept (eas_core.gateway.shadow).

Small asyncio servers stand in for the candidate's instance: one that answers, one that
answers something else, one that never answers (a hung processor).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import uvloop

from eas_core.gateway.metrics import GatewayMetrics
from eas_core.gateway.shadow import Mirror
from eas_core.gateway.table import RouteTableHolder
from eas_core.http.server import Request, Response
from eas_core.http.upstream import UpstreamPool
from eas_core.spec.routes import RouteTable, ServiceRoute, Upstream
from eas_core.spec.shadow import ShadowRecord, ShadowRoute
from tests.support.installation import metric_in


class Candidate(asyncio.Protocol):
    """Answers each request with ``answer``, or never when ``answer`` is None."""

    def __init__(self, answer: bytes | None, opened: list[asyncio.BaseTransport]) -> None:
        self.answer = answer
        self.transport: asyncio.Transport | None = None
        self.opened = opened

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.opened.append(transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.answer is not None:
            head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(self.answer)}\r\n\r\n"
            self.transport.write(head.encode() + self.answer)


class Server:
    """A candidate instance on a free loopback port; ``close`` ends its connections too (a
    hung one never would, and the event loop would wait for them)."""

    def __init__(self, server: asyncio.AbstractServer, opened: list[asyncio.BaseTransport]):
        self.server = server
        self.opened = opened

    def close(self) -> None:
        self.server.close()
        for transport in self.opened:
            transport.close()


async def serve(answer: bytes | None) -> tuple[Server, int]:
    loop = asyncio.get_running_loop()
    opened: list[asyncio.BaseTransport] = []
    server = await loop.create_server(lambda: Candidate(answer, opened), "127.0.0.1", 0)
    return Server(server, opened), server.sockets[0].getsockname()[1]


def table(port: int | None, percent: float) -> RouteTableHolder:
    """``live`` mirrored at ``percent`` to ``cand``, whose one instance listens on ``port``
    (no instance when None)."""
    upstreams = [Upstream(instance="cand-1", host="127.0.0.1", port=port)] if port else []
    holder = RouteTableHolder()
    holder.install(
        RouteTable(
            version=1,
            services={
                "live": ServiceRoute(
                    name="live", shadow=ShadowRoute(target="cand", percent=percent, since=7)
                ),
                "cand": ServiceRoute(name="cand", upstreams=upstreams),
            },
        )
    )
    return holder


def call(body: bytes = b"x") -> Request:
    return Request("POST", "/api/predict/live", "", {}, body, True)


def mirror(holder: RouteTableHolder, metrics: GatewayMetrics, **bounds: float) -> Mirror:
    settings = {
        "max_in_flight": 64,
        "max_bytes": 1 << 20,
        "timeout": 5.0,
        "ring_size": 8,
        "body_bytes": 16,
    }
    settings.update(bounds)
    return Mirror(
        UpstreamPool(),
        holder,
        metrics,
        max_in_flight=int(settings["max_in_flight"]),
        max_bytes=int(settings["max_bytes"]),
        timeout=settings["timeout"],
        ring_size=int(settings["ring_size"]),
        body_bytes=int(settings["body_bytes"]),
    )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(asyncio.wait_for(scenario(), 20))


def send(m: Mirror, holder: RouteTableHolder, live: bytes = b"same", body: bytes = b"x") -> None:
    route = holder.get("live")
    assert route is not None
    m.after_answer(route, call(body), "", "/api/predict/", Response(200, live), 0.001)


def test_the_share_of_calls_copied_is_exact_and_pairs_compare_whole_answers() -> None:
    async def scenario() -> None:
        server, port = await serve(b"same")
        holder, metrics = table(port, 20), GatewayMetrics()
        m = mirror(holder, metrics)
        try:
            for i in range(100):
                send(m, holder, live=b"same" if i % 2 else b"other")
            await asyncio.gather(*m.tasks)
            record = m.record("live", 100)
            assert record.since == 7
            assert record.counters.mirrored == 20
            assert record.counters.compared == 20
            assert record.counters.agreed + record.counters.disagreed == 20
            assert len(record.pairs) == 8  # the ring keeps the last ring_size pairs
            assert all(p.same == (p.live_body == p.shadow_body) for p in record.pairs)
            assert all(p.shadow_status == 200 and p.live_status == 200 for p in record.pairs)
            text = metrics.render().decode()
            total = metric_in(text, "eas_gateway_shadow_calls_total", service="live")
            assert total == 20
        finally:
            await m.close()
            m.pool.close()
            server.close()
            await asyncio.sleep(0)

    run(scenario)


def test_copies_over_the_in_flight_bound_are_dropped_and_counted() -> None:
    async def scenario() -> None:
        server, port = await serve(None)  # hung: copies stay in flight until their timeout
        holder, metrics = table(port, 100), GatewayMetrics()
        m = mirror(holder, metrics, max_in_flight=3, timeout=0.3)
        try:
            for _ in range(10):
                send(m, holder)
            await asyncio.sleep(0)  # let the copies start
            assert m.in_flight == 3
            record = m.record("live", 10)
            assert record.counters.mirrored == 3
            assert record.counters.dropped == {"in_flight": 7}
            await asyncio.gather(*m.tasks)
            record = m.record("live", 10)
            assert record.counters.failed == 3
            assert all(p.shadow_status == 0 and "0.3 s" in p.shadow_error for p in record.pairs)
            assert m.in_flight == 0 and m.held_bytes == 0
            send(m, holder)  # a slot is free again: the next copy goes
            assert m.record("live", 0).counters.mirrored == 4
        finally:
            await m.close()
            m.pool.close()
            server.close()
            await asyncio.sleep(0)

    run(scenario)


def test_copies_over_the_bytes_bound_are_dropped_and_counted() -> None:
    async def scenario() -> None:
        server, port = await serve(None)
        holder, metrics = table(port, 100), GatewayMetrics()
        # Each copy holds its request body (400 bytes) and the live answer (4 bytes).
        m = mirror(holder, metrics, max_bytes=1000, timeout=0.3)
        try:
            for _ in range(4):
                send(m, holder, body=b"b" * 400)
            record = m.record("live", 0)
            assert record.counters.mirrored == 2
            assert record.counters.dropped == {"bytes": 2}
            assert m.held_bytes == 808
            await asyncio.gather(*m.tasks)
            assert m.held_bytes == 0
        finally:
            await m.close()
            m.pool.close()
            server.close()
            await asyncio.sleep(0)

    run(scenario)


def test_a_target_without_ready_instance_drops_the_copy_and_a_new_setting_counts_afresh() -> None:
    async def scenario() -> None:
        holder = table(None, 100)
        m = mirror(holder, GatewayMetrics())
        send(m, holder)
        assert m.record("live", 0).counters.dropped == {"no_target": 1}
        # A new setting (since) starts new counters.
        route = holder.table.services["live"].model_copy(
            update={"shadow": ShadowRoute(target="cand", percent=100, since=8)}
        )
        holder.install(RouteTable(version=2, services={**holder.table.services, "live": route}))
        send(m, holder)
        record = m.record("live", 0)
        assert record.since == 8 and record.counters.dropped == {"no_target": 1}
        # "live" leaves the route table: its log goes with it.
        holder.install(RouteTable(version=3, services={"cand": holder.table.services["cand"]}))
        m.forget_others(set(holder.table.services))
        assert "live" not in m.logs
        assert m.record("live", 0) == ShadowRecord()
        m.pool.close()

    run(scenario)
