"""The same service written the usual FastAPI way: a token check, then the body back (or the
shared model's answer). Served by uvicorn (uvloop + httptools, one worker).

    python -m bench.peers.fastapi_echo --port 9000 --token T [--workload heart --model PATH]
"""

from __future__ import annotations

import argparse
import hmac
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI, Request, Response


def build(token: str, handle: Callable[[bytes], bytes] | None = None) -> FastAPI:
    app = FastAPI()

    @app.post("/api/predict/{name}")
    async def predict(name: str, request: Request) -> Response:
        presented = request.headers.get("authorization", "")
        if not hmac.compare_digest(presented.encode(), token.encode()):
            return Response("invalid or missing token", status_code=401)
        body = await request.body()
        return Response(body if handle is None else handle(body))

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--workload", choices=("echo", "heart", "mlp"), default="echo")
    parser.add_argument("--model")
    args = parser.parse_args()
    handle = None
    if args.workload != "echo":
        from bench.peers.bare import handler

        handle = handler(args.workload, args.model)
    uvicorn.run(
        build(args.token, handle),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        access_log=False,
    )


if __name__ == "__main__":
    main()
