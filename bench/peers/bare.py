"""Calibration: what Python does with no layers — uvloop + httptools, one process, one loop.

    python -m bench.peers.bare --port 9000 --token T [--workload echo|heart|mlp --model PATH]

Every POST is answered in the parser's callback on the event loop: the token in
``Authorization`` compared, then the body echoed (or scored by the shared model code).
Keep-alive HTTP/1.1 only; no routing, no queue, no threads.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
from collections.abc import Callable
from typing import cast

import httptools
import uvloop


def response(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)


class Connection(asyncio.Protocol):
    def __init__(self, token: bytes, handle: Callable[[bytes], bytes]) -> None:
        self.token = token
        self.handle = handle
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.presented = b""
        self.chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(response(b"400 Bad Request", b"malformed request"))
            self.transport.close()

    # httptools' callbacks, named after the parser's events.
    def on_message_begin(self) -> None:
        self.presented = b""
        self.chunks = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization":
            self.presented = value

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        if not hmac.compare_digest(self.presented, self.token):
            self.transport.write(response(b"401 Unauthorized", b"invalid or missing token"))
            return
        try:
            answer = response(b"200 OK", self.handle(b"".join(self.chunks)))
        except (ValueError, KeyError, TypeError) as exc:
            answer = response(b"400 Bad Request", str(exc).encode())
        self.transport.write(answer)


def handler(workload: str, model: str | None) -> Callable[[bytes], bytes]:
    if workload == "echo":
        return lambda body: body
    from bench.peers.scoring import HeartModel, MLPModel

    if model is None:
        raise SystemExit(f"--model: the {workload} workload needs the model file")
    return (HeartModel(model) if workload == "heart" else MLPModel(model)).answer_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--workload", choices=("echo", "heart", "mlp"), default="echo")
    parser.add_argument("--model")
    args = parser.parse_args()
    handle = handler(args.workload, args.model)
    token = args.token.encode()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Connection(token, handle), "127.0.0.1", args.port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
