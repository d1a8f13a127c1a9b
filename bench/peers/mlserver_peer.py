"""MLServer: a custom runtime behind its V2 REST endpoint (``/v2/models/bench/infer``).

Started by ``mlserver start DIR``, where ``settings.json`` and ``model-settings.json`` are
written by :func:`write_settings` (the harness calls it in the peers' MLServer virtualenv:
``python -m bench.peers.mlserver_peer DIR --port … --workload …``). One model, ``bench``,
whose ``parameters.extra`` names the workload and the token; ``max_batch_size`` /
``max_batch_time`` turn on MLServer's adaptive batching, which merges V2 requests along the
first dimension before :meth:`BenchRuntime.predict` and splits the answer back.

MLServer has no authentication of its own; it hands the HTTP headers to the runtime in
``parameters.headers``, which is where the token is checked. Under adaptive batching the
merged request keeps one request's headers, so the check covers one request per batch.
"""

from __future__ import annotations

import argparse
import hmac
import json
from pathlib import Path

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse

from bench.peers.scoring import HeartModel, MLPModel


class Unauthorized(MLServerError):
    def __init__(self) -> None:
        super().__init__("invalid or missing token", status_code=401)


class BenchRuntime(MLModel):
    async def load(self) -> bool:
        parameters = self.settings.parameters
        assert parameters is not None and parameters.extra is not None
        self.token = str(parameters.extra["token"]).encode()
        self.workload = str(parameters.extra["workload"])
        self.heart = HeartModel(parameters.uri) if self.workload == "heart" else None
        self.mlp = MLPModel(parameters.uri) if self.workload == "mlp" else None
        return True

    def _authorize(self, payload: InferenceRequest) -> None:
        headers = (payload.parameters.headers if payload.parameters else None) or {}
        presented = str(headers.get("authorization", "")).encode()
        if not hmac.compare_digest(presented, self.token):
            raise Unauthorized()

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        self._authorize(payload)
        first = payload.inputs[0]
        if self.heart is not None:
            rows = NumpyCodec.decode_input(first).astype(np.float64).tolist()
            outputs = [NumpyCodec.encode_output("p", self.heart.probabilities(rows))]
        elif self.mlp is not None:
            y = self.mlp.run(NumpyCodec.decode_input(first).astype(np.float32))
            outputs = [NumpyCodec.encode_output("y", y)]
        else:
            outputs = [StringCodec.encode_output("echo", StringCodec.decode_input(first))]
        return InferenceResponse(model_name=self.name, outputs=outputs)


def write_settings(
    directory: Path,
    *,
    ports: tuple[int, int, int],
    token: str,
    workload: str,
    model: str | None,
    batch: int,
    timeout_ms: float,
) -> None:
    http, grpc, metrics = ports
    directory.mkdir(parents=True, exist_ok=True)
    server = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc,
        "metrics_port": metrics,
        "debug": False,
        "parallel_workers": 1,  # MLServer's default: the model runs in one worker process
    }
    model_settings: dict[str, object] = {
        "name": "bench",
        "implementation": "bench.peers.mlserver_peer.BenchRuntime",
        "parameters": {"uri": model or "", "extra": {"token": token, "workload": workload}},
    }
    if batch > 0:
        model_settings["max_batch_size"] = batch
        model_settings["max_batch_time"] = timeout_ms / 1000
    (directory / "settings.json").write_text(json.dumps(server, indent=1))
    (directory / "model-settings.json").write_text(json.dumps(model_settings, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description="Write MLServer's settings for one workload.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--ports", required=True, help="http,grpc,metrics")
    parser.add_argument("--token", required=True)
    parser.add_argument("--workload", choices=("echo", "heart", "mlp"), default="echo")
    parser.add_argument("--model")
    parser.add_argument("--max-batch-size", type=int, default=0, help="0: no batching")
    parser.add_argument("--max-batch-timeout-ms", type=float, default=50.0)
    args = parser.parse_args()
    http, grpc, metrics = (int(p) for p in args.ports.split(","))
    write_settings(
        args.directory,
        ports=(http, grpc, metrics),
        token=args.token,
        workload=args.workload,
        model=args.model,
        batch=args.max_batch_size,
        timeout_ms=args.max_batch_timeout_ms,
    )


if __name__ == "__main__":
    main()
