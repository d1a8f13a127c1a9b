"""HTTP/1.1 server protocol: httptools parses, one async handler answers.

Fields are grouped by lifetime: the server (handler, limits, open connections, the body
budget), the connection (transport, parser, pipeline of parsed requests, flow control) and
the request (url, headers, body chunks). Pipelined requests are answered in order.

What a caller may hold is bounded (``eas_core.http.limits.Limits``); each refusal is an
answer naming the limit, after which the connection ends:

* a request target over max_url_bytes → 414; header fields over max_header_bytes or
  max_headers → 431; a body over max_body_bytes → 413; anything unparseable → 400 — each
  answered as soon as it is seen, before the rest is read. httptools holds a header line
  until it ends, so the bytes of a head still arriving are counted as they come, too;
* ``check_head`` (the gateway's authentication) sees the head of a request with a body
  before any of it is read, and what it answers ends the connection (a request without a
  body is left to the handler, which can answer it and keep the connection);
* request bodies held by the whole server are capped (max_buffered_bytes): a request
  reserves its declared size before its body is read, and one that does not fit is
  answered 503 with Retry-After — fast and cheap for everyone, where waiting for room would
  let a few slow uploads hold every other caller's connection;
* a connection idle too long is closed; one too slow to send its head, or stalled in its
  body, is answered 408. One sweep over the connections a few times a second checks this,
  so the predict path only notes the time at each step;
* over max_connections the longest-idle keep-alive connection is closed to make room (its
  client just opens another), and when none is idle the new connection is answered 503 —
  an answer at once, where not accepting would leave callers waiting in the kernel's
  backlog with no word, and asyncio cannot pause a listening server anyway;
* reading pauses while max_pipeline requests wait, and while the client is not reading our
  answers (write buffer over its high-water mark), and resumes when they are taken.

A handler may also answer at once (``immediate``): a plain function the server calls in the
parser's callback, as soon as a request is complete, that returns the answer or None. An
answer is written right there — no task, no trip round the event loop, which for a call of
a few microseconds is most of its cost; None hands the request to the async handler as
usual. It may also return DEFERRED and later hand the answer to the connection's
``respond`` from a callback of its own (the gateway does, from its upstream connection's
parser), still with no task. The runtime answers its built-in endpoints and the calls of a
processor running on the loop at once.

A refusal is written and then the connection lingers: our side is shut for writing and
what the client still sends is read and dropped for up to linger_timeout, so a client busy
sending its body reads the refusal instead of a connection reset.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable

import httptools

from eas_core.http.limits import BodyBudget, Limits, open_files_limit
from eas_core.http.messages import (  # re-exported: handlers import them from here
    DEFERRED,
    Handler,
    HeadCheck,
    Immediate,
    Request,
    Response,
    retry_later,
    text,
)
from eas_core.http.messages import (
    Responder as Responder,
)
from eas_core.http.names import header_name, method_name, split_target

log = logging.getLogger(__name__)

FILES_RESERVED = 64  # descriptors kept for everything but client connections
# Reads larger than this are parsed a slice at a time (see data_received): a request's head
# and a small body fit in one, so the common call is still one parse.
FEED_SLICE = 1024

# Where a connection is in reading a request.
IDLE, HEAD, BODY, LINGER = 0, 1, 2, 3


class HttpServer:
    """Owns the listening socket and the open connections; drains them on shutdown."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body_bytes: int,
        limits: Limits | None = None,
        check_head: HeadCheck | None = None,
        immediate: Immediate | None = None,
    ) -> None:
        self.handler = handler
        self.immediate = immediate
        self.max_body_bytes = max_body_bytes
        self.limits = limits or Limits()
        self.check_head = check_head
        self.budget = BodyBudget(self.limits.max_buffered_bytes)
        self.max_connections = self.limits.max_connections
        # The most raw bytes a head within the limits can take (request line, header lines
        # with their separators), for counting a head that is still arriving.
        limits = self.limits
        self.max_head_bytes = (
            limits.max_url_bytes + limits.max_header_bytes + 4 * limits.max_headers + 1024
        )
        self.connections: set[HttpProtocol] = set()
        self.idle: dict[HttpProtocol, None] = {}  # waiting for a request, longest idle first
        self.lingering: set[HttpProtocol] = set()
        # The loop's clock once serving (connections note the time at each step).
        self.now: Callable[[], float] = time.monotonic
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.draining = False

    def protocol(self) -> HttpProtocol:
        return HttpProtocol(self)

    async def serve(self, host: str, port: int, *, sock: socket.socket | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.now = loop.time
        # Each connection is a file descriptor: make room for the cap, or lower it.
        room = open_files_limit(self.max_connections + FILES_RESERVED) - FILES_RESERVED
        if room < self.max_connections:
            log.warning(
                "max_connections %d is over what the open-files limit allows; using %d",
                self.max_connections,
                max(room, 1),
            )
            self.max_connections = max(room, 1)
        if sock is not None:
            self._server = await loop.create_server(self.protocol, sock=sock, backlog=2048)
        else:
            self._server = await loop.create_server(
                self.protocol, host, port, reuse_address=True, backlog=2048
            )
        self._sweeper = loop.create_task(self._sweep())

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep(self) -> None:
        limits = self.limits
        shortest = min(
            limits.idle_timeout, limits.header_timeout, limits.body_timeout, limits.linger_timeout
        )
        period = min(1.0, max(0.05, shortest / 4))
        while True:
            await asyncio.sleep(period)
            self.expire(self.now())

    def expire(self, now: float) -> None:
        """Close or refuse the connections whose time is up (see the module docstring)."""
        limits = self.limits
        # Kept in the order they became idle: stop at the first one still in time.
        while self.idle:
            conn = next(iter(self.idle))
            if now - conn.since < limits.idle_timeout:
                break
            conn.close()
        for conn in list(self.lingering):
            if now - conn.since >= limits.linger_timeout:
                conn.close()
        for conn in list(self.connections):
            if conn.write_paused and now - conn.write_paused_since >= limits.idle_timeout:
                conn.close()  # the client stopped reading our answers
            elif conn.reading_paused:
                continue  # the wait is ours, not the client's
            elif conn.phase == HEAD and now - conn.since >= limits.header_timeout:
                conn.refuse(
                    text(408, f"request header not received within {limits.header_timeout:g} s")
                )
            elif conn.phase == BODY and now - conn.since >= limits.body_timeout:
                conn.refuse(
                    text(408, f"no request body bytes received for {limits.body_timeout:g} s")
                )

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
        for conn in [*self.connections, *self.lingering]:
            conn.close()
        if self._sweeper is not None:
            self._sweeper.cancel()


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ""
        self.phase = IDLE
        self.since = 0.0  # when the current phase began (or, in a body, when bytes last came)
        self.pipeline: deque[Request] = deque()
        self.queued_bytes = 0
        self.busy = False
        self.reading_paused = False
        self.write_paused = False
        self.write_paused_since = 0.0
        self.writable: asyncio.Event | None = None
        self.refusal: Response | None = None  # waiting for the answers before it
        self.closed = False
        # Per request, reset in on_message_begin.
        self.request: Request | None = None  # from its head on, until handed to the handler
        self.url = b""
        self.headers: dict[str, str] = {}
        self.header_count = 0
        self.head_bytes = 0  # header names and values parsed so far
        self.head_raw = 0  # bytes known to be in a head still arriving
        self.began = False  # a request began within the bytes being parsed
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_left = 0  # bytes of a declared body still to come
        self.unparsed = b""  # read, not yet parsed: reading paused partway through a read

    # -- connection events -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        server = self.server
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else ""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(  # type: ignore[attr-defined]
            high=self.limits.write_high_water, low=self.limits.write_low_water
        )
        self.since = server.now()
        if len(server.connections) >= server.max_connections:
            if not server.idle:
                self.refuse(
                    retry_later(
                        f"connection limit reached: this server keeps at most "
                        f"{server.max_connections} connections open (max_connections)"
                    )
                )
                return
            next(iter(server.idle)).close()  # the longest-idle one makes room
        server.connections.add(self)
        server.idle[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        server = self.server
        server.connections.discard(self)
        server.idle.pop(self, None)
        server.lingering.discard(self)
        self._release(self.request)
        for request in self.pipeline:
            self._release(request)
        self.pipeline.clear()
        if self.writable is not None:
            self.writable.set()

    def data_received(self, data: bytes) -> None:
        if self.phase == LINGER or self.refusal is not None:
            return  # the answer is written or due: what still comes is dropped
        if len(data) <= FEED_SLICE:
            self._feed(data)  # a small request, or the last bytes of one
            return
        # A large read may hold many pipelined requests: parse it a slice at a time (a
        # declared body's rest in one go), so parsing stops where the pipeline fills up.
        view = memoryview(data)
        start, end = 0, len(data)
        while start < end:
            if self.phase == LINGER or self.refusal is not None:
                return
            if self.reading_paused:
                self.unparsed = bytes(view[start:])  # parsed once reading resumes
                return
            step = self.body_left if self.phase == BODY and self.body_left > 0 else FEED_SLICE
            self._feed(view[start : start + step])
            start += step

    def _feed(self, data: bytes | memoryview) -> None:
        if self.phase == BODY:
            self.since = self.server.now()
        self.began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.refuse(text(400, "upgrade is not supported"))
        except httptools.HttpParserError as exc:
            self.refuse(text(400, f"malformed HTTP request: {exc}"))
        else:
            if self.phase == HEAD:
                # httptools holds a header line until it ends: count what arrives meanwhile
                # (a lower bound: the bytes of the read this head began in are not known).
                self.head_raw = 0 if self.began else self.head_raw + len(data)
                if self.head_raw > self.server.max_head_bytes:
                    self.refuse(self._header_too_large())

    # -- parser callbacks, named after parser events -------------------------------------
    def on_message_begin(self) -> None:
        self.began = True
        self.phase = HEAD
        self.server.idle.pop(self, None)
        self.since = self.server.now()
        self.url = b""
        self.headers = {}
        self.header_count = 0
        self.head_bytes = 0
        self.head_raw = 0
        self.body = []
        self.body_size = 0
        self.body_left = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_url_bytes:
            self._stop(text(414, f"request URL longer than {self.limits.max_url_bytes} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        self.head_bytes += len(name) + len(value)
        if (
            self.head_bytes > self.limits.max_header_bytes
            or self.header_count > self.limits.max_headers
        ):
            self._stop(self._header_too_large())
        key = header_name(name)
        self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        server = self.server
        path, query = split_target(self.url)
        method = method_name(self.parser.get_method())
        request = Request(method, path, query, self.headers, b"", True, self.peer)
        length = self.headers.get("content-length")
        size = int(length) if length is not None and length.isdigit() else 0
        if size > server.max_body_bytes:
            self._stop(text(413, f"request body larger than {server.max_body_bytes} bytes"))
        if server.check_head is not None and (size or "transfer-encoding" in self.headers):
            refusal = server.check_head(request)
            if refusal is not None:
                self._stop(refusal)
        if size:
            if not server.budget.reserve(size):
                self._stop(self._over_budget())
            request.reserved = size
        self.body_left = size
        self.request = request
        self.phase = BODY
        self.since = server.now()
        if (
            "expect" in self.headers
            and self.transport is not None
            and (self.headers["expect"].lower() == "100-continue")
        ):
            # curl sends this for bodies over 1 KiB and would otherwise wait a second.
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self.body_size += len(chunk)
        self.body_left -= len(chunk)
        request = self.request
        assert request is not None
        if self.body_size > request.reserved:
            # No declared length (chunked): the budget is reserved as the body arrives.
            server = self.server
            if self.body_size > server.max_body_bytes:
                self._stop(text(413, f"request body larger than {server.max_body_bytes} bytes"))
            if not server.budget.reserve(self.body_size - request.reserved):
                self._stop(self._over_budget())
            request.reserved = self.body_size
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        request = self.request
        assert request is not None
        self.request = None
        body = self.body
        request.body = body[0] if len(body) == 1 else b"".join(body)
        request.keep_alive = self.parser.should_keep_alive()
        self.body = []
        self.phase = IDLE
        if self.busy:
            self.pipeline.append(request)
            self.queued_bytes += len(request.body)
            if (
                len(self.pipeline) >= self.limits.max_pipeline
                or self.queued_bytes >= self.server.max_body_bytes
            ):
                self._pause_reading()
        else:
            self.busy = True
            immediate = self.server.immediate
            if immediate is not None and not self.write_paused:
                try:
                    response = immediate(request, self)
                except Exception:
                    log.exception("handler failed for %s %s", request.method, request.path)
                    response = text(500, "internal error", close=True)
                if response is DEFERRED:
                    return  # busy until respond() is called
                if response is not None:
                    if self._write_answer(request, response):
                        self._rest()  # nothing is queued behind it: the connection idles
                    return
            asyncio.get_running_loop().create_task(self.answer(request))

    # -- answering -----------------------------------------------------------------------
    async def answer(self, request: Request) -> None:
        while True:
            try:
                response = await self.server.handler(request)
            except Exception:
                log.exception("handler failed for %s %s", request.method, request.path)
                response = text(500, "internal error", close=True)
            if not self._write_answer(request, response):
                return
            if not self.pipeline:
                self._rest()
                return
            queued = await self._next_queued()
            if queued is None:
                return
            request = queued

    async def _next_queued(self) -> Request | None:
        """The next pipelined request, once the client reads our answers (None: closed)."""
        if self.write_paused:
            await self._writable()
            if self.closed:
                return None
        request = self.pipeline.popleft()
        self.queued_bytes -= len(request.body)
        self._resume_reading()
        return request

    def respond(self, request: Request, response: Response) -> None:
        """The answer to a request its ``immediate`` deferred: written now, then the
        requests pipelined behind it are answered in turn."""
        if not self._write_answer(request, response):
            return
        if not self.pipeline:
            self._rest()
            return
        asyncio.get_running_loop().create_task(self._answer_queued())

    async def _answer_queued(self) -> None:
        request = await self._next_queued()
        if request is not None:
            await self.answer(request)

    def _write_answer(self, request: Request, response: Response) -> bool:
        """Write one answer; False when the connection ends with it (or already had)."""
        self._release(request)
        keep_alive = request.keep_alive and not response.close and not self.server.draining
        if self.closed or self.transport is None:
            return False
        self.transport.write(response.encode(keep_alive))
        if not keep_alive:
            self.close()
            return False
        return True

    def _rest(self) -> None:
        """Every request read so far is answered: refuse what was refused, or idle."""
        self.busy = False
        if self.refusal is not None:
            self._write_refusal(self.refusal)
        elif self.phase == IDLE:
            self.since = self.server.now()
            self.server.idle[self] = None

    def refuse(self, response: Response) -> None:
        """Answer what we will not serve, then end the connection (after the answers to
        requests before it, which go out first)."""
        if self.refusal is not None or self.phase == LINGER or self.closed:
            return
        self._release(self.request)
        self.request = None
        self.server.idle.pop(self, None)
        if self.busy:
            self.refusal = response
            self._pause_reading()
            return
        self._write_refusal(response)

    def _stop(self, response: Response) -> None:
        """Refuse from inside a parser callback, and stop the parser there."""
        self.refuse(response)
        raise httptools.HttpParserError(response.body.decode("utf-8", "replace"))

    def _write_refusal(self, response: Response) -> None:
        server = self.server
        if self.transport is None or self.closed:
            return
        self.refusal = response
        self.transport.write(response.encode(keep_alive=False))
        server.connections.discard(self)
        if len(server.lingering) >= max(16, server.max_connections // 8):
            self.close()  # too many already: this one gets no grace
            return
        self.phase = LINGER
        self.since = server.now()
        server.lingering.add(self)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    def _header_too_large(self) -> Response:
        limits = self.limits
        return text(
            431,
            f"request header fields over the limit of {limits.max_headers} fields "
            f"or {limits.max_header_bytes} bytes",
        )

    def _over_budget(self) -> Response:
        return retry_later(
            f"request bodies held by this server would exceed max_buffered_bytes="
            f"{self.server.budget.limit}; retry later"
        )

    def _release(self, request: Request | None) -> None:
        if request is not None and request.reserved:
            self.server.budget.release(request.reserved)
            request.reserved = 0

    # -- flow control ------------------------------------------------------------------
    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_paused_since = self.server.now()
        self._pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.writable is not None:
            self.writable.set()
        self._resume_reading()

    async def _writable(self) -> None:
        if self.writable is None:
            self.writable = asyncio.Event()
        self.writable.clear()
        if self.write_paused and not self.closed:
            await self.writable.wait()

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if (
            self.reading_paused
            and not self.write_paused
            and self.refusal is None
            and len(self.pipeline) <= self.limits.max_pipeline // 2
            and self.queued_bytes < self.server.max_body_bytes // 2
            and self.transport is not None
            and not self.closed
        ):
            self.reading_paused = False
            if self.phase in (HEAD, BODY):
                self.since = self.server.now()  # the timer restarts: the wait was ours
            unparsed, self.unparsed = self.unparsed, b""
            if unparsed:
                self.data_received(unparsed)  # may fill the pipeline again
            if not self.reading_paused and not self.closed:
                self.transport.resume_reading()

    @property
    def is_idle(self) -> bool:
        return not self.busy and not self.pipeline

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        server = self.server
        server.connections.discard(self)
        server.idle.pop(self, None)
        server.lingering.discard(self)
