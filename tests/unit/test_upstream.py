"""The gateway's second hop over real loopback sockets: which failures may be sent elsewhere.

Small asyncio servers stand in for instances that answer, close, die with the request
unread, or cannot be connected to; the pool and the gateway's forward() run against them.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from eas_core.gateway.metrics import GatewayMetrics
from eas_core.gateway.proxy import forward
from eas_core.gateway.table import CompiledRoute
from eas_core.http.server import Request
from eas_core.http.upstream import UpstreamConnection, UpstreamError, UpstreamPool
from eas_core.spec.routes import ServiceRoute, Upstream
from tests.support.installation import free_port

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
HEAD = b"POST /api/predict/s HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\n"


class Instance(asyncio.Protocol):
    """Answers each request with ``OK``, or does what ``behaviour`` says instead."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.behaviour == "close-after-read":
            self.transport.close()  # read it all, then went away: it may have run it
        elif self.behaviour == "silent":
            pass  # reads the request and never answers (a hung processor)
        elif self.behaviour == "answer-once-then-close":
            self.transport.write(OK)
            asyncio.get_running_loop().call_later(0.05, self.transport.close)
        else:
            self.transport.write(OK)


async def serve(behaviour: str) -> tuple[asyncio.AbstractServer, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Instance(behaviour), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def die_unread() -> tuple[socket.socket, int]:
    """An instance whose process never reads: connections wait in its backlog with the
    request in their buffers, until it goes away (the system resets them)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    asyncio.get_running_loop().call_later(0.2, listener.close)
    return listener, listener.getsockname()[1]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(asyncio.wait_for(scenario(), 20))


def test_a_pooled_connection_the_instance_closed_is_replaced_without_error() -> None:
    async def scenario() -> None:
        server, port = await serve("answer-once-then-close")
        pool = UpstreamPool()
        try:
            assert (await pool.send("127.0.0.1", port, HEAD, b"ping", 5)).body == b"ok"
            await asyncio.sleep(0.2)  # the instance has closed the pooled connection
            assert (await pool.send("127.0.0.1", port, HEAD, b"ping", 5)).body == b"ok"
        finally:
            pool.close()
            server.close()

    run(scenario)


def test_an_instance_that_does_not_answer_times_out_and_its_connection_is_dropped() -> None:
    async def scenario() -> None:
        server, port = await serve("silent")
        pool = UpstreamPool()
        try:
            with pytest.raises(TimeoutError):
                await pool.send("127.0.0.1", port, HEAD, b"ping", 0.2)
            # The connection that carried the unanswered call is not pooled for the next.
            assert not pool.idle.get(("127.0.0.1", port))
        finally:
            pool.close()
            server.close()

    run(scenario)


@pytest.mark.parametrize(
    ("behaviour", "reason", "sent"),
    [
        ("refused", "connect", False),
        ("die-unread", "reset", False),
        ("close-after-read", "closed", True),
    ],
)
def test_each_failure_says_whether_the_request_can_have_reached_a_processor(
    behaviour: str, reason: str, sent: bool
) -> None:
    async def scenario() -> None:
        server: asyncio.AbstractServer | socket.socket | None = None
        if behaviour == "refused":
            port = free_port()
        elif behaviour == "die-unread":
            server, port = die_unread()
        else:
            server, port = await serve(behaviour)
        pool = UpstreamPool()
        try:
            with pytest.raises(UpstreamError) as failure:
                await pool.send("127.0.0.1", port, HEAD, b"ping", 5)
            assert (failure.value.reason, failure.value.sent) == (reason, sent)
        finally:
            pool.close()
            if server is not None:
                server.close()

    run(scenario)


def test_an_instance_gone_before_the_request_arrived_did_not_receive_it() -> None:
    """Its end was on the way when the request was written: no byte of it was acknowledged,
    so nothing of it reached a processor (the pool checks idle connections for such an end
    first; this is the moment between that check and the write)."""

    async def scenario() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            UpstreamConnection, "127.0.0.1", listener.getsockname()[1]
        )
        accepted, _ = listener.accept()
        accepted.close()  # its end leaves now; the loop has not seen it yet
        try:
            with pytest.raises(UpstreamError) as failure:
                await conn.exchange(loop, HEAD, b"ping", 5.0)
            assert (failure.value.reason, failure.value.sent) == ("not_received", False)
        finally:
            conn.close()
            listener.close()

    run(scenario)


def route(*ports: int) -> CompiledRoute:
    upstreams = [Upstream(instance=f"i{p}", host="127.0.0.1", port=p) for p in ports]
    return CompiledRoute(ServiceRoute(name="s", token="t", upstreams=upstreams))


def request() -> Request:
    return Request("POST", "/api/predict/s", "", {}, b"ping", keep_alive=True)


def counted(metrics: GatewayMetrics, name: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(name, {"service": "s", "reason": reason})
    return value or 0.0


def test_forward_sends_on_when_nothing_reached_the_instance_and_counts_it() -> None:
    async def scenario() -> None:
        server, port = await serve("answer")
        metrics = GatewayMetrics()
        target = route(free_port(), port)  # the first one picked cannot be connected to
        pool = UpstreamPool()
        try:
            answer = await forward(
                pool, request(), target, "", retries=2, timeout=5, metrics=metrics
            )
        finally:
            pool.close()
            server.close()
        assert answer.status == 200 and answer.body == b"ok"
        assert counted(metrics, "eas_gateway_upstream_failures_total", "connect") == 1
        assert counted(metrics, "eas_gateway_upstream_retries_total", "connect") == 1

    run(scenario)


def test_forward_answers_502_when_the_instance_may_have_run_the_request() -> None:
    async def scenario() -> None:
        dying, dying_port = await serve("close-after-read")
        healthy, healthy_port = await serve("answer")
        metrics = GatewayMetrics()
        target = route(dying_port, healthy_port)
        pool = UpstreamPool()
        try:
            answer = await forward(
                pool, request(), target, "", retries=2, timeout=5, metrics=metrics
            )
        finally:
            pool.close()
            dying.close()
            healthy.close()
        assert answer.status == 502
        assert f"instance i{dying_port}".encode() in answer.body
        assert b"not sent to another instance" in answer.body
        assert counted(metrics, "eas_gateway_upstream_failures_total", "closed") == 1
        assert counted(metrics, "eas_gateway_upstream_retries_total", "closed") == 0

    run(scenario)
