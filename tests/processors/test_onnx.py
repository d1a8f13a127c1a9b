"""The ONNX processor: a graph built with onnx.helper at test time, answers compared with ONNX
Runtime's own in-process run and with numpy, in both request forms (tf_request.proto and
JSON), in-process and through a real installation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from processors.base import ProcessorLoadError, RequestContext
from processors.wire import tensors
from processors.wire import tf_request_pb2 as pb
from tests.processors import tensor_models as models
from tests.processors.contract import Case, call, check_contract, context, load
from tests.processors.service import BATCHED, deployed
from tests.support.installation import Installation, metric

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")

CODE = "onnx"
X = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0], [3.0, 0.0, -2.0, 1.0]], np.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return models.onnx_mlp(tmp_path_factory.mktemp("onnx"))


def in_process(path: Path, x: np.ndarray[Any, Any]) -> dict[str, Any]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y, label = session.run(None, {"x": x})
    return {"y": y, "label": label}


def request(feed: dict[str, Any], fetch: tuple[str, ...] = ()) -> bytes:
    message = pb.PredictRequest(output_filter=list(fetch))
    for name, value in feed.items():
        tensors.fill(message.inputs[name], value, name)
    return message.SerializeToString()


def outputs(body: bytes) -> dict[str, Any]:
    response = pb.PredictResponse.FromString(body)
    return {k: tensors.to_array(v, k) for k, v in response.outputs.items()}


def check_both(path: Path, weights: dict[str, Any], x: np.ndarray[Any, Any]) -> Any:
    want = in_process(path, x)
    numpy_y = np.maximum(x @ weights["W"] + weights["b"], 0)

    def check(body: bytes) -> None:
        got = outputs(body)
        np.testing.assert_allclose(got["y"], want["y"], atol=1e-5)
        np.testing.assert_allclose(got["y"], numpy_y, atol=1e-5)
        np.testing.assert_array_equal(got["label"], want["label"])

    return check


def test_contract_protobuf(model: tuple[Path, dict[str, Any]]) -> None:
    path, weights = model
    check_contract(
        Case(
            code=CODE,
            model_entry=str(path),
            request=request({"x": X}),
            check=check_both(path, weights, X),
            bad_requests=[
                (b"\x12\xff\xff", "malformed request body"),
                (request({"x": X.astype(np.float64)}), "input 'x': the model takes DT_FLOAT"),
                (request({"x": X[:, :2]}), "input 'x': shape [3, 2] does not match the model's"),
                (request({}), "missing input 'x'"),
                (request({"x": X, "z": X}), "unknown input 'z'"),
                (request({"x": X}, ("nope",)), "output_filter: unknown output 'nope'"),
            ],
        )
    )


def test_contract_json(model: tuple[Path, dict[str, Any]]) -> None:
    path, _ = model
    want = in_process(path, X)

    def check(body: bytes) -> None:
        document = json.loads(body)
        assert set(document["outputs"]) == {"y", "label"}
        # float32 values travel exactly as JSON numbers.
        np.testing.assert_array_equal(np.float32(document["outputs"]["y"]), want["y"])
        assert document["outputs"]["label"] == want["label"].tolist()

    check_contract(
        Case(
            code=CODE,
            model_entry=str(path),
            request=json.dumps({"inputs": {"x": X.tolist()}}).encode(),
            check=check,
            bad_requests=[
                (b"{not json", "malformed JSON body"),
                (b'{"inputs": [1, 2]}', "inputs: the JSON body must be"),
                (b'{"inputs": {"x": [[1, 2], [3]]}}', "input 'x': not a rectangular"),
                (b'{"inputs": {"x": [["a", "b", "c", "d"]]}}', "input 'x'"),
                (b'{"inputs": {"x": [[1, 2, 3]]}}', "input 'x': shape [1, 3] does not match"),
                (b'{"inputs": {"y": [[1, 2, 3, 4]]}}', "unknown input 'y'"),
                (b'{"inputs": {"x": [[1, 2, 3, 4]]}, "output_filter": "y"}', "output_filter"),
            ],
        )
    )


def test_json_by_content_type_and_output_filter(model: tuple[Path, dict[str, Any]]) -> None:
    path, _ = model
    processor = load(Case(CODE, str(path), b"", lambda _: None))
    body = b'  \n{"inputs": {"x": [[1, 2, 3, 4]]}, "output_filter": ["label"]}'
    ctx = RequestContext("s", "/", headers={"content-type": "application/json; charset=utf-8"})
    answer, status = call(processor, body, ctx)
    assert status == 200
    assert json.loads(answer) == {
        "outputs": {
            "label": in_process(path, np.array([[1, 2, 3, 4]], np.float32))["label"].tolist()
        }
    }


def test_get_answers_inputs_and_outputs(model: tuple[Path, dict[str, Any]]) -> None:
    processor = load(Case(CODE, str(model[0]), b"", lambda _: None))
    body, status = call(processor, b"", context(method="GET"))
    assert status == 200
    assert json.loads(body) == {
        "inputs": [{"name": "x", "shape": [-1, 4], "type": "DT_FLOAT"}],
        "outputs": [
            {"name": "y", "shape": [-1, 3], "type": "DT_FLOAT"},
            {"name": "label", "shape": [-1], "type": "DT_INT64"},
        ],
    }


def test_batch_mixes_forms_and_sizes(model: tuple[Path, dict[str, Any]]) -> None:
    processor = load(Case(CODE, str(model[0]), b"", lambda _: None))
    bodies = [
        request({"x": X[:1]}),
        json.dumps({"inputs": {"x": X.tolist()}}).encode(),
        request({"x": np.ones((2, 5), np.float32)}),
        request({"x": X[1:]}),
        b"{broken",
    ]
    answers = processor.process_batch(bodies, [context()] * len(bodies))  # type: ignore[attr-defined]
    assert [status for _, status in answers] == [200, 200, 400, 200, 400]
    for index in (0, 1, 3):
        assert answers[index] == call(processor, bodies[index])  # bit-identical to alone


def test_model_of_the_wrong_kind_is_refused_at_load(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07 this is no graph")
    with pytest.raises(ProcessorLoadError, match=r"model\.onnx is not an ONNX model"):
        load(Case(CODE, str(bad), b"", lambda _: None))
    (tmp_path / "other.onnx").write_bytes(b"")
    with pytest.raises(ProcessorLoadError, match=r"name the \.onnx file in it"):
        load(Case(CODE, str(tmp_path), b"", lambda _: None))


def test_gpu_code_without_cuda_provider_says_so(model: tuple[Path, dict[str, Any]]) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA: onnx_gpu loads")
    with pytest.raises(ProcessorLoadError, match="no CUDAExecutionProvider"):
        load(Case("onnx_gpu", str(model[0]), b"", lambda _: None))


def test_deployed_through_the_installation(
    installation: Installation, unique_name: str, model: tuple[Path, dict[str, Any]]
) -> None:
    path, weights = model
    check = check_both(path, weights, X)
    with deployed(installation, unique_name, "onnx_cpu", path) as service:
        for direct in (False, True):
            got = service.post(request({"x": X}), direct=direct)
            assert got.status_code == 200, got.text
            check(got.content)
            as_json = service.post(
                json.dumps({"inputs": {"x": X.tolist()}}).encode(),
                direct=direct,
                **{"Content-Type": "application/json"},
            )
            assert as_json.status_code == 200, as_json.text
            np.testing.assert_array_equal(
                np.float32(as_json.json()["outputs"]["y"]), outputs(got.content)["y"]
            )
            bad = service.post(request({"x": X[:, :1]}), direct=direct)
            assert bad.status_code == 400 and "input 'x'" in bad.text
            assert service.get(direct=direct).json()["inputs"][0]["name"] == "x"


def test_batched_service_answers_bit_identically_to_unbatched(
    installation: Installation, unique_name: str, model: tuple[Path, dict[str, Any]]
) -> None:
    alone = load(Case(CODE, str(model[0]), b"", lambda _: None))
    bodies = [
        request({"x": X[:1]}),
        request({"x": X}),
        json.dumps({"inputs": {"x": X[1:].tolist()}}).encode(),
        request({"x": np.ones((2, 5), np.float32)}),
        request({"x": X[2:]}, fetch=("label",)),
        request({"x": -X}),
    ]
    with deployed(installation, unique_name, "onnx_cpu", model[0], metadata=BATCHED) as service:
        answers = service.together(bodies, direct=True)
        for body, got in zip(bodies, answers, strict=True):
            assert (got.content, got.status_code) == call(alone, body)
        assert [a.status_code for a in answers] == [200, 200, 200, 400, 200, 200]
        url = f"{service.direct}/api/builtin/metrics"
        assert metric(url, "eas_batch_size_sum", service=unique_name) == len(bodies)
        # Fewer processor calls than requests: some of them shared a batch.
        assert metric(url, "eas_batch_size_count", service=unique_name) < len(bodies)


@pytest.mark.parametrize("threads", ["1", "3"])
def test_onnx_runtime_uses_the_threads_the_instance_was_given(
    model: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, threads: str
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    path, _ = model
    processor = load(Case("onnx", str(path), b"", lambda body: None))
    options = processor.session.get_session_options()  # type: ignore[attr-defined]
    assert options.intra_op_num_threads == int(threads)
