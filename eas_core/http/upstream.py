"""Pooled keep-alive HTTP/1.1 client connections to instances (the gateway's second hop).

``UpstreamPool.send`` takes an already encoded request and returns the parsed response.
Idle connections are reused per (host, port); a reused connection that the instance closed
meanwhile is detected before anything is sent and replaced by a fresh one.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import httptools


class UpstreamError(Exception):
    """The instance could not be reached or closed the connection without answering."""


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool


class UpstreamConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[UpstreamResponse] | None = None
        self.closed = False
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(UpstreamError(f"connection closed: {exc or 'by peer'}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(UpstreamError(f"malformed response: {exc}"))
            self.close()

    def on_message_begin(self) -> None:
        self.headers = []
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        response = UpstreamResponse(
            status=self.parser.get_status_code(),
            headers=self.headers,
            body=b"".join(self.body),
            keep_alive=self.parser.should_keep_alive(),
        )
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(response)

    async def exchange(self, request: bytes) -> UpstreamResponse:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            return await self.waiter
        finally:
            self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    def __init__(self, *, max_idle_per_host: int = 256, connect_timeout: float = 2.0) -> None:
        self.idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self.max_idle_per_host = max_idle_per_host
        self.connect_timeout = connect_timeout

    async def _connect(self, host: str, port: int) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(UpstreamConnection, host, port), self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    async def send(self, host: str, port: int, request: bytes, timeout: float) -> UpstreamResponse:
        key = (host, port)
        idle = self.idle.get(key)
        conn = None
        while idle:
            candidate = idle.pop()
            if not candidate.closed:
                conn = candidate
                break
        if conn is None:
            conn = await self._connect(host, port)
        try:
            # asyncio.timeout, not wait_for: no extra task per request on the hot path.
            async with asyncio.timeout(timeout):
                response = await conn.exchange(request)
        except TimeoutError:
            conn.close()
            raise
        except UpstreamError:
            conn.close()
            raise
        if response.keep_alive and not conn.closed:
            pool = self.idle.setdefault(key, [])
            if len(pool) < self.max_idle_per_host:
                pool.append(conn)
            else:
                conn.close()
        else:
            conn.close()
        return response

    def forget(self, host: str, port: int) -> None:
        """Close the idle connections to an instance that left the route table."""
        for conn in self.idle.pop((host, port), []):
            conn.close()

    def close(self) -> None:
        for pool in self.idle.values():
            for conn in pool:
                conn.close()
        self.idle.clear()
