"""HTTP/1.1 server protocol: httptools parses, one async handler answers.

Fields are grouped by lifetime: the server (handler, limits, open connections), the
connection (transport, parser, pipeline of parsed requests) and the request (url, headers,
body chunks). Pipelined requests are answered in order; a malformed request is answered 400
and the connection closed; a body over the limit is answered 413 and the connection closed
before the rest of it is read.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

log = logging.getLogger(__name__)

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS.update({450: "Queue Full", 499: "Client Closed Request"})
_STATUS_LINES: dict[int, bytes] = {}

MAX_PIPELINE = 32  # parsed-but-unanswered requests before we stop reading


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        reason = _REASONS.get(status, "Unknown")
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason}\r\n".encode()
    return line


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; the last value wins
    body: bytes
    keep_alive: bool
    peer: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False  # close the connection after this response

    def encode(self, keep_alive: bool) -> bytes:
        parts = [status_line(self.status), b"content-length: %d\r\n" % len(self.body)]
        if self.content_type:
            parts.append(b"content-type: " + self.content_type.encode("latin-1") + b"\r\n")
        for name, value in self.headers:
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        parts.append(self.body)
        return b"".join(parts)


Handler = Callable[[Request], Awaitable[Response]]


def text(status: int, message: str, *, close: bool = False) -> Response:
    return Response(status, message.encode(), "text/plain; charset=utf-8", close=close)


class HttpServer:
    """Owns the listening socket and the open connections; drains them on shutdown."""

    def __init__(self, handler: Handler, *, max_body_bytes: int) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.connections: set[HttpProtocol] = set()
        self._server: asyncio.base_events.Server | None = None
        self.draining = False

    def protocol(self) -> HttpProtocol:
        return HttpProtocol(self)

    async def serve(self, host: str, port: int, *, sock: socket.socket | None = None) -> None:
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(self.protocol, sock=sock, backlog=2048)
        else:
            self._server = await loop.create_server(
                self.protocol, host, port, reuse_address=True, backlog=2048
            )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout``), close the rest."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.is_idle:
                conn.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.close()


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ""
        self.pipeline: deque[Request] = deque()
        self.busy = False
        self.reading_paused = False
        self.closed = False
        # Per request, reset in on_message_begin.
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_size = 0
        self.rejected = False

    # -- connection events -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else ""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.rejected:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.reject(400, "upgrade is not supported")
        except httptools.HttpParserError as exc:
            if not self.rejected:
                self.reject(400, f"malformed HTTP request: {exc}")

    # -- parser callbacks, named after parser events -------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.body = []
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body_bytes:
            self.reject(413, f"request body larger than {self.server.max_body_bytes} bytes")
            # Stop the parser: the rest of this connection's bytes are not read.
            raise httptools.HttpParserError("body too large")
        if self.headers.get("expect", "").lower() == "100-continue" and self.transport:
            # curl sends this for bodies over 1 KiB and would otherwise wait a second.
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self.body_size += len(chunk)
        if self.body_size > self.server.max_body_bytes:
            self.reject(413, f"request body larger than {self.server.max_body_bytes} bytes")
            raise httptools.HttpParserError("body too large")
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self.url)
        request = Request(
            method=self.parser.get_method().decode("ascii"),
            path=url.path.decode("latin-1"),
            query=(url.query or b"").decode("latin-1"),
            headers=self.headers,
            body=b"".join(self.body) if len(self.body) != 1 else self.body[0],
            keep_alive=self.parser.should_keep_alive(),
            peer=self.peer,
        )
        if self.busy:
            self.pipeline.append(request)
            if len(self.pipeline) >= MAX_PIPELINE and not self.reading_paused and self.transport:
                self.transport.pause_reading()
                self.reading_paused = True
        else:
            self.busy = True
            asyncio.get_running_loop().create_task(self.answer(request))

    # -- answering -----------------------------------------------------------------------
    async def answer(self, request: Request) -> None:
        while True:
            try:
                response = await self.server.handler(request)
            except Exception:
                log.exception("handler failed for %s %s", request.method, request.path)
                response = text(500, "internal error", close=True)
            keep_alive = request.keep_alive and not response.close and not self.server.draining
            if self.closed or self.transport is None:
                return
            self.transport.write(response.encode(keep_alive))
            if not keep_alive:
                self.close()
                return
            if not self.pipeline:
                self.busy = False
                return
            request = self.pipeline.popleft()
            if self.reading_paused and len(self.pipeline) < MAX_PIPELINE // 2 and self.transport:
                self.transport.resume_reading()
                self.reading_paused = False

    def reject(self, status: int, message: str) -> None:
        """Answer a request we could not parse or accept, then close."""
        self.rejected = True
        if self.transport is not None and not self.closed:
            self.transport.write(text(status, message).encode(keep_alive=False))
        self.close()

    @property
    def is_idle(self) -> bool:
        return not self.busy and not self.pipeline

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self.server.connections.discard(self)
