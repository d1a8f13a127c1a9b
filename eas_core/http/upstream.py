"""Pooled keep-alive HTTP/1.1 client connections to instances (the gateway's second hop).

``UpstreamPool.send`` takes an already encoded request and returns the parsed response.
Idle connections are reused per (host, port), youngest first, and only while younger than
``idle_timeout`` — below the instances' own idle timeout, so an instance never closes a
connection the gateway is about to use.

Every failure says whether the request can have reached the instance's processor, which
decides whether sending it to another instance is safe (``UpstreamError.sent``). A
processor is handed a request only once the instance has read all of it, so:

* not sent — the connection could not be made (refused, unreachable, timed out); or it
  ended before the instance's system acknowledged any byte of the request (Linux's
  TCP_INFO, read when the end arrives): its process was gone before the request got
  there; or the instance reset it before answering: a connection closed with bytes its
  process had not read is reset by the system, so the instance never read this request
  whole. A pooled connection whose end or reset already waits in its socket is not even a
  failure: it is dropped and another one used;
* sent — the connection ended, or broke some other way, after the instance received the
  request and before a complete answer: it may have read the request and then closed or
  died, so a processor may have run it — and may be what killed the instance, so sending
  it to another instance could take that one down too.
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

import httptools

# A request body at least this large is written after its head rather than joined to it,
# so that a large body is not copied once more on the way out.
JOIN_BELOW = 64 * 1024
# Linux's struct tcp_info (linux/tcp.h): tcpi_bytes_acked, a u64 at this offset (after the
# eight u8 fields, 24 u32 and the two u64 pacing rates), counts the SYN as one byte.
_BYTES_ACKED = struct.Struct("=Q")
_BYTES_ACKED_AT = 120


Done = Callable[["UpstreamResponse | BaseException"], None]


class UpstreamError(Exception):
    """The instance could not be reached, or did not answer what was sent to it."""

    def __init__(self, message: str, *, reason: str, sent: bool) -> None:
        super().__init__(message)
        self.reason = reason  # a short word for metrics: connect, closed, malformed, ...
        self.sent = sent  # may the request have reached the instance?


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
        # Told how the request in flight ended: its answer, or the error it failed with.
        self.done: Done | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.answering = False  # the answer to the request in flight has begun
        self.written = 0  # bytes of requests written over this connection
        self.request_start = 0  # ... before the request in flight
        self.unreceived = False  # it ended before any byte of that request was acknowledged
        self.idle_since = 0.0
        self.poller: select.poll | None = None  # watches the socket while it is pooled
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.poller = select.poll()
            self.poller.register(sock.fileno(), select.POLLIN | select.POLLRDHUP)

    def eof_received(self) -> bool | None:
        if self.done is not None and not self.answering:
            self.unreceived = self._none_acknowledged()
        return None  # close

    def _none_acknowledged(self) -> bool:
        """Did the instance's system acknowledge no byte of the request in flight?"""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        except (OSError, AttributeError, ValueError):
            return False  # cannot tell: assume it got there
        if len(info) < _BYTES_ACKED_AT + _BYTES_ACKED.size:
            return False
        (acked,) = _BYTES_ACKED.unpack_from(info, _BYTES_ACKED_AT)
        return bool(acked <= self.request_start + 1)  # + 1: the SYN

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.poller = None  # its descriptor is gone and may be reused
        if self.done is None:
            return
        if isinstance(exc, ConnectionResetError | BrokenPipeError) and not self.answering:
            error = UpstreamError(
                "reset the connection before reading all of the request", reason="reset", sent=False
            )
        elif exc is None and self.unreceived:
            error = UpstreamError(
                "closed the connection before receiving the request",
                reason="not_received",
                sent=False,
            )
        else:
            error = UpstreamError(
                f"closed the connection before answering ({exc or 'end of stream'})",
                reason="closed",
                sent=True,
            )
        self.settle(error)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.settle(
                UpstreamError(f"sent a malformed response: {exc}", reason="malformed", sent=True)
            )
            self.close()

    def on_message_begin(self) -> None:
        self.answering = True
        self.headers = []
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        body = self.body
        response = UpstreamResponse(
            status=self.parser.get_status_code(),
            headers=self.headers,
            body=body[0] if len(body) == 1 else b"".join(body),  # one chunk: no copy
            keep_alive=self.parser.should_keep_alive(),
        )
        self.body = []
        self.settle(response)

    def settle(self, result: UpstreamResponse | BaseException) -> None:
        """The request in flight ended with ``result``: tell whoever sent it, once."""
        done = self.done
        if done is None:
            return
        self.done = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        done(result)

    def is_reusable(self) -> bool:
        """Is this idle connection still open at the other end? Its end of stream or reset
        may be waiting in the socket before the event loop has reported it."""
        if self.closed or self.poller is None:
            return False
        # Any event on an idle connection - its end, a reset, bytes nobody asked for - means
        # it cannot carry a request. One poll(2) with no wait, on the open descriptor.
        return not self.poller.poll(0)

    def begin(
        self,
        loop: asyncio.AbstractEventLoop,
        head: bytes,
        body: bytes,
        timeout: float,
        done: Done,
    ) -> None:
        """Write one request; ``done`` gets its answer or error (TimeoutError after
        ``timeout`` seconds) from the event loop. Raises UpstreamError at once (not sent)
        when the connection is already gone."""
        transport = self.transport
        assert transport is not None
        if self.closed or transport.is_closing():  # it ended as soon as it was made
            raise UpstreamError(
                "closed the connection before the request was written",
                reason="not_received",
                sent=False,
            )
        self.answering = False
        self.request_start = self.written
        self.written += len(head) + len(body)
        if len(body) < JOIN_BELOW:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        if transport.is_closing():
            # The write failed at once (the peer had reset): nothing of it was taken.
            raise UpstreamError("reset the connection", reason="reset", sent=False)
        self.done = done
        # One timer on the loop, rather than asyncio.timeout: that builds a context manager
        # and reschedules per request, a tenth of a proxied call.
        self.timer = loop.call_later(timeout, self.settle, TimeoutError())

    async def exchange(
        self, loop: asyncio.AbstractEventLoop, head: bytes, body: bytes, timeout: float
    ) -> UpstreamResponse:
        """``begin``, awaited: the answer, or the error raised."""
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()

        def done(result: UpstreamResponse | BaseException) -> None:
            if waiter.done():
                return
            if isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)

        self.begin(loop, head, body, timeout, done)
        try:
            return await waiter
        finally:
            if self.done is done:  # cancelled: nobody waits for this answer any more
                self.settle(asyncio.CancelledError())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    def __init__(
        self,
        *,
        max_idle_per_host: int = 256,
        connect_timeout: float = 2.0,
        idle_timeout: float = 30.0,
    ) -> None:
        self.idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self.max_idle_per_host = max_idle_per_host
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout

    async def _connect(self, host: str, port: int) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(UpstreamConnection, host, port), self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(
                f"cannot be connected to at {host}:{port}: {exc or 'timed out'}",
                reason="connect",
                sent=False,
            ) from exc
        return conn

    def _pooled(self, key: tuple[str, int], now: float) -> UpstreamConnection | None:
        idle = self.idle.get(key)
        while idle:
            candidate = idle.pop()
            if now - candidate.idle_since < self.idle_timeout and candidate.is_reusable():
                return candidate
            candidate.close()
        return None

    async def send(
        self, host: str, port: int, head: bytes, body: bytes, timeout: float
    ) -> UpstreamResponse:
        """Send one request (its encoded head, then its body) and return the answer.

        Raises :class:`UpstreamError` (its ``sent`` says whether the request may have
        reached the instance) or ``TimeoutError`` after ``timeout`` seconds.
        """
        key = (host, port)
        loop = asyncio.get_running_loop()
        conn = self._pooled(key, loop.time())
        if conn is None:
            conn = await self._connect(host, port)
        try:
            response = await conn.exchange(loop, head, body, timeout)
        except (TimeoutError, UpstreamError):
            conn.close()
            raise
        self._after(key, conn, response, loop)
        return response

    def send_pooled(
        self, host: str, port: int, head: bytes, body: bytes, timeout: float, done: Done
    ) -> bool:
        """``send`` without a coroutine, over an idle pooled connection: False (nothing
        sent) when there is none, else ``done`` gets the answer or the error later."""
        key = (host, port)
        loop = asyncio.get_running_loop()
        conn = self._pooled(key, loop.time())
        if conn is None:
            return False

        def finished(result: UpstreamResponse | BaseException) -> None:
            if isinstance(result, BaseException):
                conn.close()
            else:
                self._after(key, conn, result, loop)
            done(result)

        try:
            conn.begin(loop, head, body, timeout, finished)
        except UpstreamError:
            conn.close()  # it was gone: the caller takes the general path (a new one)
            return False
        return True

    def _after(
        self,
        key: tuple[str, int],
        conn: UpstreamConnection,
        response: UpstreamResponse,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Keep an answered connection for the next request, if it can carry one."""
        if response.keep_alive and not conn.closed:
            pool = self.idle.setdefault(key, [])
            if len(pool) < self.max_idle_per_host:
                conn.idle_since = loop.time()
                pool.append(conn)
                return
        conn.close()

    def forget(self, host: str, port: int) -> None:
        """Close the idle connections to an instance that left the route table."""
        for conn in self.idle.pop((host, port), []):
            conn.close()

    def close(self) -> None:
        for pool in self.idle.values():
            for conn in pool:
                conn.close()
        self.idle.clear()
