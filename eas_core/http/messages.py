"""What the kit's server hands a handler and what it writes back: a parsed request, a
response and its encoding (status lines formatted once per status)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS.update({450: "Queue Full", 499: "Client Closed Request"})
_STATUS_LINES: dict[int, bytes] = {}


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
    # What the server's head check learned about this request (the gateway's route).
    context: object = None
    reserved: int = 0  # bytes of the server's body budget this request holds

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
        if keep_alive and not self.headers and self.content_type is None:
            # The predict path's usual answer: one formatting, no list of parts.
            return b"%scontent-length: %d\r\n\r\n%s" % (
                status_line(self.status),
                len(self.body),
                self.body,
            )
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


class Responder(Protocol):
    """Where a deferred answer goes (see ``Immediate``): the request's connection."""

    def respond(self, request: Request, response: Response) -> None: ...


# Answers a complete request at once on the loop, or None to leave it to the Handler, or
# DEFERRED: it will call ``responder.respond(request, answer)`` itself, later, on the loop.
Immediate = Callable[[Request, Responder], Response | None]
DEFERRED = Response(0)  # compared by identity
# Sees the head of a request with a body before the body is read; a response refuses it.
HeadCheck = Callable[[Request], Response | None]


def text(status: int, message: str, *, close: bool = False) -> Response:
    return Response(status, message.encode(), "text/plain; charset=utf-8", close=close)


def retry_later(message: str) -> Response:
    response = text(503, message, close=True)
    response.headers.append(("retry-after", "1"))
    return response
