"""Every ``examples/<processor>/`` runs as its docstring says: the script makes the model, the
model loads in the processor its ``service.json`` names, and a request is answered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eas_core.sdk import TFRequest, TFResponse, TorchRequest, TorchResponse
from processors import registry
from tests.processors.contract import Case, call, context, load
from tests.support.installation import REPO

EXAMPLES = REPO / "examples"


def _caffe_request() -> bytes:
    from processors.wire import caffe_pb2

    message = caffe_pb2.PredictRequest(input_name=["data"])
    message.input_data.add(shape=caffe_pb2.ArrayShape(dim=[1, 4]), data=[1, 2, 3, 4])
    return message.SerializeToString()


def _tf_request() -> bytes:
    request = TFRequest("predict_images")
    request.add_feed("images", [1, 4], TFRequest.DT_FLOAT, [1, 2, 3, 4])
    return request.to_string()


def _torch_request() -> bytes:
    request = TorchRequest()
    request.add_feed(0, [1, 4], TorchRequest.DT_FLOAT, [1, 2, 3, 4])
    return request.to_string()


def _shape(example: str, body: bytes) -> list[int]:
    if example == "tensorflow":
        return TFResponse(body).get_tensor_shape("scores")
    if example == "pytorch":
        return TorchResponse(body).get_tensor_shape(0)
    if example == "onnx":
        return list(np.shape(json.loads(body)["outputs"]["y"]))
    from processors.wire import caffe_pb2

    return list(caffe_pb2.PredictResponse.FromString(body).output_data[0].shape.dim)


REQUESTS = {
    "tensorflow": _tf_request,
    "pytorch": _torch_request,
    "onnx": lambda: b'{"inputs": {"x": [[1, 2, 3, 4]]}}',
    "caffe": _caffe_request,
}

# example → (module its framework needs, the model path make_model.py is given)
CASES = {
    "tensorflow": ("tensorflow", "model"),
    "pytorch": ("torch", "model.pt"),
    "onnx": ("onnxruntime", "model.onnx"),
    "caffe": ("cv2", "model"),
}


@pytest.mark.parametrize("example", sorted(CASES))
def test_example_model_serves_with_its_description(example: str, tmp_path: Path) -> None:
    module, model_name = CASES[example]
    pytest.importorskip(module, reason=f"the {example} extra is not installed")
    directory = EXAMPLES / example
    description = json.loads((directory / "service.json").read_text())
    assert description["model_path"] == f"./{model_name}"
    assert description["processor"] in registry.BUILTIN
    made = subprocess.run(
        [sys.executable, str(directory / "make_model.py"), str(tmp_path / model_name)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert made.returncode == 0, made.stderr
    config = description.get("model_config", "")
    processor = load(
        Case(
            description["processor"],
            str(tmp_path / model_name),
            b"",
            lambda _: None,
            model_config=config if isinstance(config, str) else json.dumps(config),
        )
    )
    body, status = call(processor, REQUESTS[example](), context())
    assert status == 200, body
    assert _shape(example, body) == [1, 3]


TABULAR = ["pmml", "sklearn", "xgboost", "lightgbm", "parameter_server"]


@pytest.mark.parametrize("example", TABULAR)
def test_example_model_is_served_by_the_processor_its_description_names(
    example: str, tmp_path: Path
) -> None:
    folder = EXAMPLES / example
    description = json.loads((folder / "service.json").read_text())
    assert set(description) == {"name", "processor", "model_path", "metadata"}
    assert registry.refusal(description["processor"]) is None
    subprocess.run(
        [sys.executable, "-m", f"examples.{example}.make_model", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    model = tmp_path / description["model_path"]
    assert model.exists(), sorted(p.name for p in tmp_path.iterdir())
    request = (folder / "request.json").read_bytes()
    processor = load(Case(description["processor"], str(model), request, lambda _: None))
    body, status = call(processor, request)
    assert status == 200, body
    answers = json.loads(body)
    assert isinstance(answers, list) and len(answers) == len(json.loads(request))
