"""The Open Inference Protocol on the tensor processors without a server: a v2 call answers
what the processor's own wire format answers for the same tensors, alone and inside a batch
that mixes both forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from processors.base import RequestContext, normalize_reply
from processors.wire import tensors
from processors.wire import tf_request_pb2 as pb
from tests.processors import tensor_models as models
from tests.processors.contract import Case, call, context, load

ROWS = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0], [3.0, 0.0, -2.0, 1.0]], np.float32)


def v2_context(service: str = "contract") -> RequestContext:
    return RequestContext(service, f"/v2/models/{service}/infer")


def v2_body(name: str, array: np.ndarray[Any, Any], datatype: str = "FP32") -> bytes:
    tensor = {"name": name, "shape": list(array.shape), "datatype": datatype}
    return json.dumps({"inputs": [{**tensor, "data": array.ravel().tolist()}]}).encode()


def v2_outputs(body: bytes) -> dict[str, np.ndarray[Any, Any]]:
    document = json.loads(body)
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in document["outputs"]}


def pb_request(feed: dict[str, Any]) -> bytes:
    message = pb.PredictRequest()
    for name, value in feed.items():
        tensors.fill(message.inputs[name], value, name)
    return message.SerializeToString()


def pb_outputs(body: bytes) -> dict[str, np.ndarray[Any, Any]]:
    response = pb.PredictResponse.FromString(body)
    return {k: tensors.to_array(v, k) for k, v in response.outputs.items()}


def test_tensorflow_v2_answers_what_its_protobuf_form_answers(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="the tensorflow extra is not installed")
    path, _ = models.keras_classifier(tmp_path)
    processor = load(Case("tensorflow_cpu_1.15", str(path), b"", lambda _: None))
    assert processor.v2_metadata() == {  # type: ignore[attr-defined]
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "scores", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "top", "datatype": "INT64", "shape": [-1]},
        ],
    }
    reply = normalize_reply(processor.process(v2_body("images", ROWS), v2_context()))
    assert reply.status == 200, reply.body
    got = v2_outputs(reply.body)
    want = pb_outputs(call(processor, pb_request({"images": ROWS}))[0])
    np.testing.assert_array_equal(got["scores"].astype(np.float32), want["scores"])
    np.testing.assert_array_equal(got["top"], want["top"])
    bad = normalize_reply(processor.process(v2_body("images", ROWS, "FP64"), v2_context()))
    # Plain text here: the runtime wraps a refusal on a v2 path as {"error": ...}.
    assert bad.status == 400 and b"input 'images'" in bad.body


def test_onnx_batch_mixes_v2_and_protobuf_calls(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    path, _ = models.onnx_mlp(tmp_path)
    processor = load(Case("onnx", str(path), b"", lambda _: None))
    bodies = [
        v2_body("x", ROWS[:1]),
        pb_request({"x": ROWS}),
        v2_body("x", ROWS[1:]),
        v2_body("x", np.ones((2, 5), np.float32)),
    ]
    ctxs = [v2_context(), context(), v2_context(), v2_context()]
    answers = processor.process_batch(bodies, ctxs)  # type: ignore[attr-defined]
    replies = [normalize_reply(a) for a in answers]
    assert [r.status for r in replies] == [200, 200, 200, 400]
    for body, ctx, reply in zip(bodies, ctxs, replies, strict=True):
        assert reply == normalize_reply(processor.process(body, ctx))  # bit-identical to alone
    assert b"input 'x'" in replies[3].body
    alone = pb_outputs(replies[1].body)
    np.testing.assert_array_equal(
        v2_outputs(replies[0].body)["y"].astype(np.float32), alone["y"][:1]
    )
