"""Length-prefixed frames between the instance runtime and a package's ENV interpreter.

A message is a list of byte strings: a 4-byte count, then each part as a 4-byte big-endian
length and its bytes. Standard library only; the stub and the runtime share this file.
"""

from __future__ import annotations

import socket
import struct

_U32 = struct.Struct(">I")
MAX_PART_BYTES = 1 << 31


def send(sock: socket.socket, parts: list[bytes]) -> None:
    chunks = [_U32.pack(len(parts))]
    for part in parts:
        chunks.append(_U32.pack(len(part)))
        chunks.append(part)
    sock.sendall(b"".join(chunks))


def _exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise ConnectionError("the other side closed the channel")
        got += n
    return bytes(buffer)


def receive(sock: socket.socket) -> list[bytes]:
    (count,) = _U32.unpack(_exactly(sock, 4))
    parts = []
    for _ in range(count):
        (size,) = _U32.unpack(_exactly(sock, 4))
        if size > MAX_PART_BYTES:
            raise ConnectionError(f"frame part of {size} bytes is over {MAX_PART_BYTES}")
        parts.append(_exactly(sock, size))
    return parts
