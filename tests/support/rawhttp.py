"""Byte-level HTTP over a real socket: what a hostile or slow client sends, and the answer.

Answers are parsed with the standard library's ``http.client``; requests are written as raw
bytes, so a test can send what no well-behaved client would.
"""

from __future__ import annotations

import http.client
import select
import socket
import time
from dataclasses import dataclass

CHUNK = 256 * 1024


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def connect(port: int, *, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_answer(sock: socket.socket, method: str = "POST") -> Answer:
    response = http.client.HTTPResponse(sock, method=method)
    try:
        response.begin()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        response.close()


def has_answered(sock: socket.socket, wait: float = 0.0) -> bool:
    """Is there something to read (an answer, or the end of the connection)?"""
    readable, _, _ = select.select([sock], [], [], wait)
    return bool(readable)


def send_until_answered(sock: socket.socket, head: bytes, filler_bytes: int) -> int:
    """Send ``head``, then up to ``filler_bytes`` of b"a" in chunks, stopping as soon as the
    server answers or stops taking bytes. Returns how many filler bytes were sent."""
    sock.sendall(head)
    sent = 0
    chunk = b"a" * CHUNK
    while sent < filler_bytes and not has_answered(sock):
        try:
            sock.sendall(chunk[: min(CHUNK, filler_bytes - sent)])
        except OSError:  # the server closed its side: its answer is in our buffer
            break
        sent += min(CHUNK, filler_bytes - sent)
    return sent


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Does the server close this connection within ``within`` seconds (reading any answer)?"""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not has_answered(sock, min(0.2, max(0.0, deadline - time.monotonic()))):
            continue
        try:
            if sock.recv(65536) == b"":
                return True
        except OSError:
            return True
    return False


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
