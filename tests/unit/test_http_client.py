"""The blocking keep-alive client (the synchronous SDK's plain-HTTP path) against the kit's
server on loopback, run on its own event loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import uvloop

from eas_core.http.client import BlockingPool
from eas_core.http.limits import Limits
from eas_core.http.server import HttpServer, Request, Response
from eas_core.http.upstream import UpstreamError
from tests.support.installation import free_port


class Echo:
    """An echo server on a loop thread; ``/close`` answers and ends the connection."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.loop = uvloop.new_event_loop()
        self.server = HttpServer(self.handle, max_body_bytes=1 << 20, limits=limits)
        self.peers: set[str] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.serve("127.0.0.1", 0), self.loop).result(10)
        self.port = self.server.port

    async def handle(self, request: Request) -> Response:
        self.peers.add(request.peer)
        return Response(200, request.body, close=request.path == "/close")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.drain(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.stop()


def post(path: str, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        path.encode(),
        len(body),
        body,
    )


def test_threads_share_keep_alive_connections(echo: Echo) -> None:
    pool = BlockingPool()
    answers: list[bytes] = []
    lock = threading.Lock()

    def load(index: int) -> None:
        for i in range(50):
            body = f"{index}-{i}".encode()
            answer = pool.send("127.0.0.1", echo.port, post("/echo", body), 5)
            assert (answer.status, answer.body) == (200, body)
            with lock:
                answers.append(answer.body)

    threads = [threading.Thread(target=load, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.close()
    assert len(answers) == 200
    assert 1 <= len(echo.peers) <= 4  # at most one connection per thread, each reused


def test_a_connection_the_server_ended_is_not_reused(echo: Echo) -> None:
    pool = BlockingPool()
    try:
        # The server closes after this answer; the client sees the end in the answer...
        assert pool.send("127.0.0.1", echo.port, post("/close", b"a"), 5).body == b"a"
        assert not pool.idle.get(("127.0.0.1", echo.port))
        assert pool.send("127.0.0.1", echo.port, post("/echo", b"b"), 5).body == b"b"
    finally:
        pool.close()


def test_a_pooled_connection_closed_while_idle_is_replaced_without_error() -> None:
    echo = Echo(Limits(idle_timeout=0.1))
    pool = BlockingPool()
    try:
        assert pool.send("127.0.0.1", echo.port, post("/echo", b"a"), 5).body == b"a"
        (pooled,) = pool.idle[("127.0.0.1", echo.port)]
        for _ in range(200):  # the server's idle sweep closes it
            if not pooled.is_reusable():
                break
            threading.Event().wait(0.02)
        assert not pooled.is_reusable()
        assert pool.send("127.0.0.1", echo.port, post("/echo", b"b"), 5).body == b"b"
        assert len(echo.peers) == 2
    finally:
        pool.close()
        echo.stop()


def test_a_refused_connection_says_nothing_was_sent() -> None:
    pool = BlockingPool()
    with pytest.raises(UpstreamError) as failure:
        pool.send("127.0.0.1", free_port(), post("/echo", b"a"), 5)
    assert (failure.value.reason, failure.value.sent) == ("connect", False)
    assert "127.0.0.1" in str(failure.value)
