"""The HTTP kit's server over real loopback sockets: limits, flow control, refusals.

Each test runs one server and its clients on one uvloop event loop, so what the server
holds (its pipeline, its write buffers, its budget) can be looked at directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from eas_core.http.limits import Limits
from eas_core.http.server import (
    DEFERRED,
    HttpProtocol,
    HttpServer,
    Request,
    Responder,
    Response,
    text,
)

MiB = 1024 * 1024


class Harness:
    """Servers and client connections of one scenario, all closed when it ends."""

    def __init__(self) -> None:
        self.servers: list[HttpServer] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def start(
        self, handler: Any, *, max_body_bytes: int = 8 * MiB, **kwargs: Any
    ) -> HttpServer:
        server = HttpServer(handler, max_body_bytes=max_body_bytes, **kwargs)
        await server.serve("127.0.0.1", 0)
        self.servers.append(server)
        return server

    async def connect(
        self, server: HttpServer
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        self.writers.append(writer)
        return reader, writer

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        for server in self.servers:
            await server.drain(0)


def run(scenario: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        harness = Harness()
        try:
            await asyncio.wait_for(scenario(harness), 30)
        finally:
            await harness.close()

    uvloop.run(main())


def get(path: str, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: x\r\n{headers}\r\n".encode()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


async def settle(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def only_connection(server: HttpServer) -> HttpProtocol:
    (conn,) = server.connections
    return conn


def test_pipelined_requests_pause_reading_at_the_limit() -> None:
    async def scenario(h: Harness) -> None:
        gate = asyncio.Event()

        async def handler(request: Request) -> Response:
            await gate.wait()
            return text(200, request.path)

        server = await h.start(handler, limits=Limits(max_pipeline=4))
        reader, writer = await h.connect(server)
        padding = "x-pad: " + "p" * 1100 + "\r\n"  # at most one request ends per parsed slice
        writer.write(b"".join(get(f"/{i}", padding) for i in range(40)))
        await settle(lambda: len(server.connections) == 1, "the connection is accepted")
        conn = only_connection(server)
        await settle(lambda: conn.reading_paused, "reading pauses")
        await asyncio.sleep(0.2)  # what else arrives stays in the socket, unparsed
        assert len(conn.pipeline) == 4
        gate.set()
        bodies = [(await read_answer(reader))[2] for _ in range(40)]
        assert bodies == [f"/{i}".encode() for i in range(40)]  # all of them, in order

    run(scenario)


def test_a_client_that_does_not_read_pauses_reading() -> None:
    async def scenario(h: Harness) -> None:
        handled: list[str] = []
        answer = b"x" * (4 * MiB)

        async def handler(request: Request) -> Response:
            handled.append(request.path)
            return Response(200, answer)

        server = await h.start(handler)
        reader, writer = await h.connect(server)
        writer.write(b"".join(get(f"/{i}") for i in range(20)))  # and read nothing yet
        await settle(lambda: len(handled) >= 1, "the first call is answered")
        conn = only_connection(server)
        await settle(lambda: conn.write_paused, "writing pauses")
        await asyncio.sleep(0.2)
        # The next calls wait until the client takes what it was sent.
        assert len(handled) <= 2
        assert conn.transport is not None
        assert conn.transport.get_write_buffer_size() <= 2 * len(answer)
        for _ in range(20):
            assert (await read_answer(reader))[2] == answer
        assert len(handled) == 20

    run(scenario)


def test_over_the_connection_cap_the_longest_idle_connection_makes_room() -> None:
    async def scenario(h: Harness) -> None:
        gate = asyncio.Event()

        async def handler(request: Request) -> Response:
            if request.path == "/wait":
                await gate.wait()
            return text(200, "ok")

        server = await h.start(handler, limits=Limits(max_connections=3))
        idle = [await h.connect(server) for _ in range(3)]
        await settle(lambda: len(server.connections) == 3, "three connections")
        reader, writer = await h.connect(server)
        writer.write(get("/"))
        assert (await read_answer(reader))[0] == 200
        assert await idle[0][0].read() == b""  # the first one, idle longest, was closed
        # Now three busy ones: there is no room, and a fourth caller is told so.
        for _, w in [*idle[1:], (reader, writer)]:
            w.write(get("/wait"))
        await settle(lambda: sum(c.busy for c in server.connections) == 3, "three busy")
        extra_reader, extra_writer = await h.connect(server)
        extra_writer.write(get("/"))
        status, headers, body = await read_answer(extra_reader)
        assert status == 503 and headers["retry-after"] == "1"
        assert b"at most 3 connections" in body
        gate.set()
        for r, _ in [*idle[1:], (reader, writer)]:
            assert (await read_answer(r))[0] == 200

    run(scenario)


def test_head_check_refuses_before_the_body_is_read() -> None:
    async def scenario(h: Harness) -> None:
        seen: list[str] = []

        def check_head(request: Request) -> Response | None:
            seen.append(request.path)
            return text(401, "no") if request.path == "/deny" else None

        async def handler(request: Request) -> Response:
            return text(200, str(len(request.body)))

        server = await h.start(handler, check_head=check_head)
        reader, writer = await h.connect(server)
        writer.write(b"POST /deny HTTP/1.1\r\nhost: x\r\ncontent-length: 8000000\r\n\r\n")
        status, headers, _ = await read_answer(reader)  # no body byte was sent
        assert status == 401 and headers["connection"] == "close"
        assert server.budget.held == 0
        # The refused client may still be sending: its bytes are dropped, the answer stands.
        writer.write(b"a" * MiB)
        assert await reader.read() == b""
        reader, writer = await h.connect(server)
        writer.write(b"POST /ok HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + get("/get"))
        assert (await read_answer(reader))[2] == b"3"
        assert (await read_answer(reader))[0] == 200
        assert seen == ["/deny", "/ok"]  # a request without a body is the handler's

    run(scenario)


def test_bodies_over_the_budget_answer_503_and_their_bytes_come_back() -> None:
    async def scenario(h: Harness) -> None:
        gate = asyncio.Event()

        async def handler(request: Request) -> Response:
            await gate.wait()
            return text(200, str(len(request.body)))

        server = await h.start(handler, limits=Limits(max_buffered_bytes=1000))
        post = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 600\r\n\r\n" + b"a" * 600
        first = await h.connect(server)
        first[1].write(post)
        await settle(lambda: server.budget.held == 600, "the first body is held")
        second = await h.connect(server)
        second[1].write(post)
        status, headers, body = await read_answer(second[0])
        assert status == 503 and headers["retry-after"] == "1"
        assert b"max_buffered_bytes=1000" in body
        chunked = await h.connect(server)
        chunked[1].write(
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"258\r\n"
            + b"b" * 600
            + b"\r\n0\r\n\r\n"
        )
        assert (await read_answer(chunked[0]))[0] == 503
        gate.set()
        assert (await read_answer(first[0]))[2] == b"600"
        await settle(lambda: server.budget.held == 0, "its bytes are given back")
        third = await h.connect(server)
        third[1].write(post)
        assert (await read_answer(third[0]))[2] == b"600"

    run(scenario)


def test_header_limits_are_exact() -> None:
    async def scenario(h: Harness) -> None:
        async def handler(request: Request) -> Response:
            return text(200, "ok")

        limits = Limits(max_header_bytes=100, max_headers=3, max_url_bytes=20)
        server = await h.start(handler, limits=limits)

        async def status(request: bytes) -> int:
            reader, writer = await h.connect(server)
            writer.write(request)
            answer = (await read_answer(reader))[0]
            writer.close()
            return answer

        # Names and values: "host" + "x" + "a" + 94 = 100 bytes.
        assert await status(get("/", "a: " + "v" * 94 + "\r\n")) == 200
        assert await status(get("/", "a: " + "v" * 95 + "\r\n")) == 431
        assert await status(get("/", "a: 1\r\nb: 2\r\n")) == 200
        assert await status(get("/", "a: 1\r\nb: 2\r\nc: 3\r\n")) == 431
        assert await status(get("/" + "p" * 19)) == 200
        assert await status(get("/" + "p" * 20)) == 414

    run(scenario)


def test_idle_slow_and_stalled_connections_are_timed_out() -> None:
    async def scenario(h: Harness) -> None:
        async def handler(request: Request) -> Response:
            return text(200, "ok")

        limits = Limits(idle_timeout=0.2, header_timeout=0.2, body_timeout=0.2)
        server = await h.start(handler, limits=limits)
        idle_reader, _ = await h.connect(server)
        slow_reader, slow_writer = await h.connect(server)
        slow_writer.write(b"GET / HTTP/1.1\r\n")
        stalled_reader, stalled_writer = await h.connect(server)
        stalled_writer.write(b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc")
        assert await idle_reader.read() == b""  # closed, nothing said
        status, _, body = await read_answer(slow_reader)
        assert status == 408 and b"header" in body
        status, _, body = await read_answer(stalled_reader)
        assert status == 408 and b"body" in body
        await settle(lambda: not server.connections and not server.lingering, "all gone")

    run(scenario)


def test_immediate_answers_keep_the_order_of_pipelined_requests_with_async_ones() -> None:
    """Requests answered at once and requests left to the async handler, pipelined on one
    connection, are answered in the order they were sent; a failing immediate answer is a
    500 that ends its connection only."""
    handled: list[str] = []

    def immediate(request: Request, responder: Responder) -> Response | None:
        if request.path.startswith("/now/"):
            return text(200, request.path)
        if request.path == "/broken":
            raise RuntimeError("immediate failed")
        return None

    async def handler(request: Request) -> Response:
        await asyncio.sleep(0.02)  # the async answer is the slow one
        handled.append(request.path)
        return text(200, request.path)

    async def scenario(h: Harness) -> None:
        server = await h.start(handler, immediate=immediate)
        reader, writer = await h.connect(server)
        paths = ["/now/1", "/later/2", "/now/3", "/now/4", "/later/5", "/now/6"]
        writer.write(b"".join(get(path) for path in paths))
        answers = [await read_answer(reader) for _ in paths]
        assert [(status, body.decode()) for status, _, body in answers] == [
            (200, path) for path in paths
        ]
        # Behind an async answer the rest wait their turn (the async handler takes them).
        assert handled == ["/later/2", "/now/3", "/now/4", "/later/5", "/now/6"]
        # Once all is answered, a request is answered at once again.
        writer.write(get("/now/7"))
        assert (await read_answer(reader))[2] == b"/now/7"
        assert len(handled) == 5

        other_reader, other_writer = await h.connect(server)
        other_writer.write(get("/broken"))
        status, headers, _ = await read_answer(other_reader)
        assert status == 500 and headers.get("connection") == "close"
        writer.write(get("/now/8"))  # the first connection is not disturbed
        assert (await read_answer(reader))[2] == b"/now/8"

    run(scenario)


def test_a_deferred_answer_is_written_when_given_and_the_pipeline_behind_it_follows() -> None:
    """An immediate handler may defer (the gateway does, until its instance answers): the
    connection answers that request when the answer is handed over, then the requests
    pipelined behind it in order; a deferred answer for a closed connection is dropped."""

    def immediate(request: Request, responder: Responder) -> Response | None:
        if request.path.startswith("/deferred/"):
            loop = asyncio.get_running_loop()
            loop.call_later(0.02, responder.respond, request, text(200, request.path))
            return DEFERRED
        return text(200, request.path)

    async def handler(request: Request) -> Response:
        return text(200, request.path)

    async def scenario(h: Harness) -> None:
        server = await h.start(handler, immediate=immediate)
        reader, writer = await h.connect(server)
        paths = ["/deferred/1", "/now/2", "/deferred/3", "/now/4"]
        writer.write(b"".join(get(path) for path in paths))
        answers = [await read_answer(reader) for _ in paths]
        assert [body.decode() for _, _, body in answers] == paths
        writer.write(get("/deferred/5"))
        assert (await read_answer(reader))[2] == b"/deferred/5"

        _, gone_writer = await h.connect(server)
        gone_writer.write(get("/deferred/6"))
        await asyncio.sleep(0.005)
        gone_writer.close()
        await asyncio.sleep(0.05)  # its answer comes after the close: nothing breaks
        writer.write(get("/now/7"))
        assert (await read_answer(reader))[2] == b"/now/7"
        assert server.budget.held == 0

    run(scenario)
