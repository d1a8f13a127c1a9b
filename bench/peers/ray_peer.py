"""Ray Serve: its HTTP proxy and one replica, on a one-CPU local Ray started here.

    python -m bench.peers.ray_peer --port 9000 --token T --workload mlp --model m.onnx \
        [--max-batch-size 16 --max-batch-timeout-ms 50]

The replica reads the raw body from the Starlette request the proxy hands it, checks the
token in ``Authorization``, and answers the echo or the shared model's answer. With
``--max-batch-size`` the MLP rows go through ``@serve.batch`` (the batch is filled to the
size or for the timeout, run once, split back). Ray runs several processes — GCS, raylet,
the Serve controller, the proxy, the replica, agents — all pinned with this one, on loopback,
and at nice 0 like every other server (Ray's default for its workers is 15).
"""

from __future__ import annotations

import argparse
import hmac
import os
import signal
import time
from types import FrameType
from typing import Any

import numpy as np
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from bench.peers.scoring import HeartModel, MLPModel


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=256)
class Server:
    def __init__(
        self, token: str, workload: str, model: str | None, batch: int, timeout_ms: float
    ) -> None:
        self.token = token.encode()
        self.workload = workload
        self.heart = HeartModel(model) if workload == "heart" and model else None
        self.mlp = MLPModel(model) if workload == "mlp" and model else None
        self.batching = batch > 0
        if self.batching:
            self.run_batch.set_max_batch_size(batch)
            self.run_batch.set_batch_wait_timeout_s(timeout_ms / 1000)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    async def run_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        assert self.mlp is not None
        return self.mlp.run_batch(inputs)

    async def __call__(self, request: Request) -> Response:
        presented = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(presented, self.token):
            return Response(b"invalid or missing token", status_code=401)
        body = await request.body()
        if self.heart is not None:
            return Response(self.heart.answer_json(body), media_type="application/json")
        if self.mlp is not None:
            x = MLPModel.parse(body)
            y = await self.run_batch(x) if self.batching else self.mlp.run(x)
            return Response(MLPModel.encode(y), media_type="application/json")
        return Response(body)


def stop(signum: int, frame: FrameType | None) -> Any:
    raise SystemExit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--workload", choices=("echo", "heart", "mlp"), default="echo")
    parser.add_argument("--model")
    parser.add_argument("--max-batch-size", type=int, default=0, help="0: no batching")
    parser.add_argument("--max-batch-timeout-ms", type=float, default=50.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop)
    # Ray starts its worker processes (the proxy and the replica among them) at nice 15;
    # every other server here runs at 0, so Ray's do too.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",  # every Ray process talks to the others on loopback
        object_store_memory=128 * 1024 * 1024,  # the shared machine's memory is not ours
    )
    try:
        serve.start(
            proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": args.port}
        )
        # serve.deployment made the class a Deployment, which Ray's typing does not show.
        app = Server.bind(  # type: ignore[attr-defined]
            args.token, args.workload, args.model, args.max_batch_size, args.max_batch_timeout_ms
        )
        serve.run(app, name="bench", route_prefix="/")
        print("ready", flush=True)
        while True:
            time.sleep(3600)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
