"""The three workloads and how each kind of server is asked for them.

- ``echo``: a 100-byte body back, the token checked — the cost of the serving layer alone.
- ``heart``: the heart-disease logistic regression (scikit-learn), one JSON record.
- ``mlp``: a small MLP (ONNX Runtime), one row — a model that gains from server-side
  batching, measured with and without it.

Every server gets the same content in its own dialect: ``raw`` servers (nginx, the bare
loop, FastAPI, Ray Serve, OpenEAS) take the body as OpenEAS's processors do (the bytes; JSON
records; ``{"inputs": {"x": …}}``), LitServe takes JSON, BentoML named JSON fields, MLServer
V2 inference requests. :func:`request` builds what wrk sends; :func:`check` reads one
answer back and compares it with the answer computed in process (``reference.json``, made
with the models by ``bench/models.py``).
"""

from __future__ import annotations

import json
import math
import string
from dataclasses import dataclass
from typing import Any

from bench.load import Request

# 100 bytes a fixed nginx answer can hold: letters and digits, no quotes.
PAYLOAD = ((string.ascii_letters + string.digits) * 2)[:100]
MLP_TOLERANCE = 1e-4  # float32 sums in another order (batched kernels) change the last bits
HEART_TOLERANCE = 1e-9
DIALECTS = ("raw", "litserve", "bentoml", "v2")


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    concurrency: tuple[int, ...]


MLP_LAYERS = (64, 1024, 1024, 10)  # the mlp workload's widths unless --mlp-layers says


def mlp_layers(text: str) -> tuple[int, ...]:
    """``64,1024,1024,10``: the widths, input first; the input stays 64 wide (the request)."""
    layers = tuple(int(v) for v in text.split(","))
    if len(layers) < 2 or layers[0] != MLP_LAYERS[0] or min(layers) < 1:
        raise ValueError(f"want {MLP_LAYERS[0]},<width>,…,<outputs>, got {text}")
    return layers


WORKLOADS = {
    "echo": Workload("echo", "echo of 100 bytes", (1, 32)),
    "heart": Workload("heart", "heart-disease logistic regression, one JSON record", (1, 32)),
    "mlp": Workload("mlp", "MLP {layers} on ONNX Runtime, one row", (1, 32, 64)),
}


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _v2_input(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def request(workload: str, dialect: str, reference: dict[str, Any], token: str) -> Request:
    """What wrk sends to a ``dialect`` server for ``workload``, and the bytes every answer
    must contain."""
    header = {"litserve": "X-API-Key"}.get(dialect, "Authorization")
    if workload == "echo":
        if dialect == "raw":
            return Request(PAYLOAD.encode(), PAYLOAD.encode(), header=header, token=token)
        body = {
            "litserve": {"input": PAYLOAD},
            "bentoml": {"data": PAYLOAD},
            "v2": {"inputs": [_v2_input("echo", "BYTES", [1], [PAYLOAD])]},
        }[dialect]
        return Request(_json(body), PAYLOAD.encode(), "application/json", header, token)
    if workload == "heart":
        record = reference["heart"]["record"]
        features = reference["heart"]["features"]
        body = {
            "raw": [record],
            "litserve": [record],
            "bentoml": {"records": [record]},
            "v2": {
                "inputs": [
                    _v2_input("records", "FP64", [1, len(features)], [record[f] for f in features])
                ]
            },
        }[dialect]
        expect = b'"p_1"' if dialect != "v2" else b'"outputs"'
        return Request(_json(body), expect, "application/json", header, token)
    if workload == "mlp":
        row = reference["mlp"]["row"]
        body = {
            "raw": {"inputs": {"x": [row]}},
            "litserve": {"inputs": {"x": [row]}},
            "bentoml": {"inputs": [row]},
            "v2": {"inputs": [_v2_input("x", "FP32", [1, len(row)], row)]},
        }[dialect]
        expect = b'"outputs"' if dialect != "bentoml" else b"[["
        return Request(_json(body), expect, "application/json", header, token)
    raise ValueError(f"workload: no {workload!r} (have: {', '.join(WORKLOADS)})")


def fixed_answer(workload: str, reference: dict[str, Any]) -> bytes:
    """The answer a raw server gives, as nginx returns it verbatim."""
    if workload == "echo":
        return PAYLOAD.encode()
    if workload == "heart":
        return _json([reference["heart"]["answer"]])
    return _json({"outputs": {"y": [reference["mlp"]["answer"]]}})


def _values(workload: str, dialect: str, document: Any) -> list[float]:
    """The numbers of an answer, in the reference's order."""
    if dialect == "v2":
        return [float(v) for v in document["outputs"][0]["data"]]
    if workload == "heart":
        answer = document[0] if isinstance(document, list) else document
        return [float(answer["p_0"]), float(answer["p_1"])]
    rows = document if dialect == "bentoml" else document["outputs"]["y"]
    return [float(v) for v in rows[0]]


def check(workload: str, dialect: str, reference: dict[str, Any], answer: bytes) -> str | None:
    """None when ``answer`` is right, else what is wrong with it."""
    if workload == "echo":
        if dialect == "raw":
            return None if answer == PAYLOAD.encode() else f"not the body back: {answer[:120]!r}"
        return None if PAYLOAD.encode() in answer else f"no payload in {answer[:200]!r}"
    try:
        got = _values(workload, dialect, json.loads(answer))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"unreadable answer ({type(exc).__name__}: {exc}): {answer[:200]!r}"
    if workload == "heart":
        answer_ref = reference["heart"]["answer"]
        want = [float(answer_ref["p_0"]), float(answer_ref["p_1"])]
        tolerance = HEART_TOLERANCE
    else:
        want = [float(v) for v in reference["mlp"]["answer"]]
        tolerance = MLP_TOLERANCE
    if len(got) != len(want) or not all(
        math.isclose(g, w, rel_tol=tolerance, abs_tol=tolerance)
        for g, w in zip(got, want, strict=True)
    ):
        return f"expected {want[:4]}…, got {got[:4]}…"
    return None
