"""A blocking keep-alive HTTP/1.1 client for threads: the synchronous SDK's plain-HTTP path.

The asyncio side has ``UpstreamPool``; this is its counterpart for callers on threads. A
request goes out as one write (its encoded head and body, so Nagle's algorithm never holds
the body back for a delayed ACK), httptools parses the answer, and the connection goes back
to a pool shared by the threads (youngest first). A pooled connection the server closed
meanwhile is noticed before use (its end or reset is already in the socket) and replaced.
"""

from __future__ import annotations

import select
import socket
import threading

import httptools

from eas_core.http.upstream import UpstreamError, UpstreamResponse

RECEIVE_BYTES = 256 * 1024


class _Answer:
    """httptools' callbacks for one response."""

    __slots__ = ("body", "complete", "headers", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.complete = False
        self.status = 0
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        # Read here: once the message is done the parser is reset for the next one.
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


class BlockingConnection:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise UpstreamError(
                f"cannot be connected to at {host}:{port}: {exc or 'timed out'}",
                reason="connect",
                sent=False,
            ) from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.poller = select.poll()
        self.poller.register(self.sock.fileno(), select.POLLIN | select.POLLRDHUP)

    def is_reusable(self) -> bool:
        # Anything readable on an idle connection - its end, a reset, stray bytes - means it
        # cannot carry a request.
        return not self.poller.poll(0)

    def exchange(self, data: bytes, timeout: float) -> UpstreamResponse:
        sock = self.sock
        sock.settimeout(timeout)
        answer = _Answer()
        parser = answer.parser
        try:
            sock.sendall(data)
            while not answer.complete:
                chunk = sock.recv(RECEIVE_BYTES)
                if not chunk:
                    raise UpstreamError(
                        "closed the connection before answering", reason="closed", sent=True
                    )
                parser.feed_data(chunk)
        except httptools.HttpParserError as exc:
            raise UpstreamError(
                f"sent a malformed response: {exc}", reason="malformed", sent=True
            ) from exc
        except TimeoutError:
            raise
        except OSError as exc:
            raise UpstreamError(f"failed mid-request: {exc}", reason="closed", sent=True) from exc
        body = answer.body
        return UpstreamResponse(
            status=answer.status,
            headers=answer.headers,
            body=body[0] if len(body) == 1 else b"".join(body),
            keep_alive=answer.keep_alive,
        )

    def close(self) -> None:
        self.sock.close()


class BlockingPool:
    """Keep-alive connections per (host, port), shared by threads."""

    def __init__(self, *, max_idle_per_host: int = 100) -> None:
        self.max_idle_per_host = max_idle_per_host
        self.idle: dict[tuple[str, int], list[BlockingConnection]] = {}
        self.lock = threading.Lock()

    def _pooled(self, key: tuple[str, int]) -> BlockingConnection | None:
        while True:
            with self.lock:
                idle = self.idle.get(key)
                if not idle:
                    return None
                conn = idle.pop()
            if conn.is_reusable():
                return conn
            conn.close()

    def send(self, host: str, port: int, data: bytes, timeout: float) -> UpstreamResponse:
        """Send one encoded request (head and body) and return the answer.

        Raises :class:`UpstreamError` or ``TimeoutError`` (after ``timeout`` seconds of
        silence); the connection is dropped either way.
        """
        key = (host, port)
        conn = self._pooled(key) or BlockingConnection(host, port, timeout)
        try:
            response = conn.exchange(data, timeout)
        except BaseException:
            conn.close()
            raise
        if not response.keep_alive:
            conn.close()
            return response
        with self.lock:
            pool = self.idle.setdefault(key, [])
            if len(pool) < self.max_idle_per_host:
                pool.append(conn)
                return response
        conn.close()
        return response

    def close(self) -> None:
        with self.lock:
            pools, self.idle = list(self.idle.values()), {}
        for pool in pools:
            for conn in pool:
                conn.close()
