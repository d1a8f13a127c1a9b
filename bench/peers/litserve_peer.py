"""LitServe: one API server process and one inference worker, JSON in and out.

    python -m bench.peers.litserve_peer --port 9000 --token T --workload mlp --model m.onnx \
        [--max-batch-size 16 --max-batch-timeout-ms 50]

LitServe parses every request body as JSON before ``decode_request`` sees it, so the echo
travels as ``{"input": "<100 bytes>"}`` and comes back as ``{"output": …}``; the models get
the same JSON as the raw servers. The token is LitServe's own check: ``LIT_SERVER_API_KEY``
against ``X-API-Key``; LitServe reads the variable at import, so the caller sets it.
With ``--max-batch-size`` the worker fills a batch to that size or for the timeout, stacks
the rows, runs the MLP once and unbatches the answers.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import litserve as ls
import numpy as np


class BenchAPI(ls.LitAPI):  # type: ignore[misc]
    """Module level: LitServe spawns its inference worker and pickles the API over."""

    def __init__(self, workload: str, model: str | None, **batching: Any) -> None:
        super().__init__(**batching)
        self.workload = workload
        self.model_path = model

    def setup(self, device: str) -> None:
        from bench.peers.scoring import HeartModel, MLPModel

        model = self.model_path
        self.heart = HeartModel(model) if self.workload == "heart" and model else None
        self.mlp = MLPModel(model) if self.workload == "mlp" and model else None

    # `request` stays unannotated: LitServe reads the annotation to choose how to parse the
    # body, and only the bare parameter gets its default (the JSON of a Starlette Request).
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        if self.mlp is not None:
            return np.asarray(request["inputs"]["x"][0], dtype=np.float32)
        if self.heart is not None:
            return request
        return request["input"]

    def predict(self, x: Any) -> Any:
        if self.mlp is not None:
            y = self.mlp.run(np.atleast_2d(x))
            return y if x.ndim == 2 else y[0]  # a stacked batch, or one row
        if self.heart is not None:
            return self.heart.answer(x)
        return x

    def encode_response(self, output: Any) -> Any:
        if self.mlp is not None:
            return {"outputs": {"y": [output.tolist()]}}
        if self.heart is not None:
            return output
        return {"output": output}


class BatchedAPI(BenchAPI):
    """With batching: rows stacked into one array, answers split back per request."""

    def batch(self, inputs: list[Any]) -> Any:
        return np.stack(inputs)

    def unbatch(self, output: Any) -> list[Any]:
        return list(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--workload", choices=("echo", "heart", "mlp"), default="echo")
    parser.add_argument("--model")
    parser.add_argument("--max-batch-size", type=int, default=0, help="0: no batching")
    parser.add_argument("--max-batch-timeout-ms", type=float, default=50.0)
    args = parser.parse_args()
    if os.environ.get("LIT_SERVER_API_KEY") != args.token:
        raise SystemExit("LIT_SERVER_API_KEY must hold the token: LitServe reads it at import")
    if args.max_batch_size > 0:
        api: BenchAPI = BatchedAPI(
            args.workload,
            args.model,
            max_batch_size=args.max_batch_size,
            batch_timeout=args.max_batch_timeout_ms / 1000,
        )
    else:
        api = BenchAPI(args.workload, args.model)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=30)
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
    )


if __name__ == "__main__":
    main()
