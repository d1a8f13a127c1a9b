"""The same echo service as eas_core/demo/echo, written the usual FastAPI way: a token check and
the body back. Served by uvicorn (uvloop + httptools, one worker) for the benchmark.

    python -m bench.peers.fastapi_echo --port 9000 --token T
"""

from __future__ import annotations

import argparse
import hmac

import uvicorn
from fastapi import FastAPI, Request, Response


def build(token: str) -> FastAPI:
    app = FastAPI()

    @app.post("/api/predict/{name}")
    async def predict(name: str, request: Request) -> Response:
        presented = request.headers.get("authorization", "")
        if not hmac.compare_digest(presented.encode(), token.encode()):
            return Response("invalid or missing token", status_code=401)
        return Response(await request.body())

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    uvicorn.run(
        build(args.token),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        access_log=False,
    )


if __name__ == "__main__":
    main()
