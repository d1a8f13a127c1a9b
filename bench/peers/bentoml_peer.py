"""BentoML: services started by ``bentoml serve bench.peers.bentoml_peer:<Service>``.

``bentoml serve`` takes no arguments of ours, so the workload's settings come from the
environment the harness sets: ``BENCH_TOKEN``, ``BENCH_MODEL``, ``BENCH_MAX_BATCH_SIZE``.
Each service is one worker (``workers=1``). APIs take named JSON fields — ``{"data": …}``
for the echo, ``{"records": […]}`` for the heart model, ``{"inputs": [[…]]}`` for the MLP —
and answer the value as JSON (the echo as text). The token is checked by an ASGI middleware
on every route before BentoML decodes anything, since a batchable API sees batches, not
requests. ``BatchedMLP`` is ``batchable=True``: BentoML's adaptive dispatcher merges the
rows of concurrent requests along the first dimension (it picks the wait itself; its knob
is the batch size).
"""

from __future__ import annotations

import hmac
import os
from typing import Any, cast

import bentoml
import numpy as np

from bench.peers.scoring import HeartModel, MLPModel

TOKEN = os.environ.get("BENCH_TOKEN", "")
MODEL = os.environ.get("BENCH_MODEL", "")
MAX_BATCH_SIZE = int(os.environ.get("BENCH_MAX_BATCH_SIZE") or "0") or 16  # used by BatchedMLP


class TokenMiddleware:
    """401 unless ``Authorization`` is the token: the same check the other servers make."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            presented = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(presented, self.token):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"invalid or missing token"})
                return
        await self.app(scope, receive, send)


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Echo:
    @bentoml.api
    def echo(self, data: str) -> str:
        return data


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Heart:
    def __init__(self) -> None:
        self.model = HeartModel(MODEL)

    @bentoml.api
    def predict(self, records: list[dict[str, float]]) -> list[dict[str, float]]:
        return self.model.answer(records)


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class MLP:
    def __init__(self) -> None:
        self.model = MLPModel(MODEL)

    @bentoml.api
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.run(inputs.astype(np.float32))


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class BatchedMLP:
    def __init__(self) -> None:
        self.model = MLPModel(MODEL)

    # max_latency_ms is BentoML's deadline for a request in the queue, not a batch window:
    # set far out, so it never turns load into 503s that the others would not give.
    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=10000)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.run(inputs.astype(np.float32))


# bentoml.service made each class a Service, which BentoML's typing does not show.
for _service in (Echo, Heart, MLP, BatchedMLP):
    cast(Any, _service).add_asgi_middleware(TokenMiddleware, token=TOKEN)
