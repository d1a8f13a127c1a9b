"""The Caffe processor: a tiny net written at test time — a deploy prototxt and a caffemodel
serialized with protobuf from our NetParameter definition, with known weights — run by
OpenCV, answers compared with numpy's, in-process and through a real installation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from processors.base import ProcessorLoadError
from processors.wire import caffe_pb2 as pb
from tests.processors import tensor_models as models
from tests.processors.contract import Case, call, check_contract, context, load
from tests.processors.service import deployed
from tests.support.installation import Installation

cv2 = pytest.importorskip("cv2", reason="the caffe extra is not installed")

CODE = "caffe_cpu"
CONFIG = json.dumps({"model": "deploy.prototxt", "weight": "net.caffemodel"})
X = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0], [3.0, 0.0, -2.0, 1.0]], np.float32)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return models.caffe_net(tmp_path_factory.mktemp("caffe"))


def request(feed: dict[str, Any], fetch: tuple[str, ...] = ()) -> bytes:
    message = pb.PredictRequest(output_filter=list(fetch))
    for name, value in feed.items():
        message.input_name.append(name)
        message.input_data.add(shape=pb.ArrayShape(dim=value.shape), data=value.ravel().tolist())
    return message.SerializeToString()


def outputs(body: bytes) -> dict[str, np.ndarray[Any, Any]]:
    response = pb.PredictResponse.FromString(body)
    return {
        name: np.float32(data.data).reshape(list(data.shape.dim))
        for name, data in zip(response.output_name, response.output_data, strict=True)
    }


def check_numpy(weights: dict[str, Any], x: np.ndarray[Any, Any]) -> Any:
    def check(body: bytes) -> None:
        got = outputs(body)
        assert list(got) == ["prob"]
        np.testing.assert_allclose(got["prob"], models.caffe_expected(x, weights), atol=1e-5)

    return check


def test_contract(net: tuple[Path, dict[str, Any]]) -> None:
    directory, weights = net
    check_contract(
        Case(
            code=CODE,
            model_entry=str(directory),
            model_config=CONFIG,
            request=request({"data": X}),
            check=check_numpy(weights, X),
            bad_requests=[
                (b"\x0a\xff\xff", "malformed request body"),
                (request({"data": X[:, :3]}), "input 'data': shape [3, 3] does not match"),
                (request({"image": X}), "input_name: unknown input 'image'"),
                (request({}), "missing input 'data'"),
                (request({"data": X}, ("nope",)), "output_filter: the net has no layer 'nope'"),
            ],
        )
    )


def test_outputs_of_inner_layers_and_an_unnamed_input(net: tuple[Path, dict[str, Any]]) -> None:
    directory, weights = net
    processor = load(Case(CODE, str(directory), b"", lambda _: None, model_config=CONFIG))
    message = pb.PredictRequest(output_filter=["ip2", "prob"])
    message.input_data.add(shape=pb.ArrayShape(dim=[3, 4]), data=X.ravel().tolist())
    body, status = call(processor, message.SerializeToString())
    assert status == 200, body
    got = outputs(body)
    hidden = np.maximum(X @ weights["ip1_w"].T + weights["ip1_b"], 0)
    np.testing.assert_allclose(
        got["ip2"], hidden @ weights["ip2_w"].T + weights["ip2_b"], atol=1e-5
    )
    np.testing.assert_allclose(got["prob"], models.caffe_expected(X, weights), atol=1e-5)


def test_values_that_do_not_fill_the_shape(net: tuple[Path, dict[str, Any]]) -> None:
    processor = load(Case(CODE, str(net[0]), b"", lambda _: None, model_config=CONFIG))
    message = pb.PredictRequest(input_name=["data"])
    message.input_data.add(shape=pb.ArrayShape(dim=[2, 4]), data=[1.0] * 7)
    body, status = call(processor, message.SerializeToString())
    assert status == 400 and b"input 'data': shape [2, 4] needs 8 values, data holds 7" in body


def test_batch_of_different_sizes_is_bit_identical(net: tuple[Path, dict[str, Any]]) -> None:
    processor = load(Case(CODE, str(net[0]), b"", lambda _: None, model_config=CONFIG))
    bodies = [
        request({"data": X[:1]}),
        request({"data": X}),
        request({"data": np.ones((2, 5), np.float32)}),
        request({"data": X[1:]}),
    ]
    answers = processor.process_batch(bodies, [context()] * 4)  # type: ignore[attr-defined]
    assert [status for _, status in answers] == [200, 200, 400, 200]
    for index in (0, 1, 3):
        assert answers[index] == call(processor, bodies[index])


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("", "model_config.model: required"),
        ('{"model": "deploy.prototxt"}', "model_config.weight: required"),
        (
            '{"model": "deploy.prototxt", "weight": "missing.caffemodel"}',
            "not in the model package",
        ),
        ('{"model": "../x", "weight": "net.caffemodel"}', "points outside the model"),
        ("not json", "model_config: not JSON"),
    ],
)
def test_bad_model_config_is_refused_at_load(
    net: tuple[Path, dict[str, Any]], config: str, needle: str
) -> None:
    with pytest.raises(ProcessorLoadError, match=needle):
        load(Case(CODE, str(net[0]), b"", lambda _: None, model_config=config))


def test_files_of_the_wrong_kind_are_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "deploy.prototxt").write_text("this is { not a prototxt")
    (tmp_path / "net.caffemodel").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ProcessorLoadError, match=r"deploy\.prototxt is not a Caffe prototxt"):
        load(Case(CODE, str(tmp_path), b"", lambda _: None, model_config=CONFIG))
    (tmp_path / "deploy.prototxt").write_text(
        'input: "data"\ninput_shape { dim: 1 dim: 4 }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        "inner_product_param { num_output: 2 } }\n"
    )
    with pytest.raises(ProcessorLoadError, match=r"OpenCV cannot read deploy\.prototxt"):
        load(Case(CODE, str(tmp_path), b"", lambda _: None, model_config=CONFIG))


def test_gpu_code_without_a_cuda_opencv_says_so(net: tuple[Path, dict[str, Any]]) -> None:
    if cv2.cuda.getCudaEnabledDeviceCount() > 0:
        pytest.skip("this OpenCV has a CUDA device: caffe_gpu loads")
    with pytest.raises(ProcessorLoadError, match="caffe_gpu runs on OpenCV's CUDA backend"):
        load(Case("caffe_gpu", str(net[0]), b"", lambda _: None, model_config=CONFIG))


def test_deployed_through_the_installation(
    installation: Installation, unique_name: str, net: tuple[Path, dict[str, Any]]
) -> None:
    directory, weights = net
    check = check_numpy(weights, X)
    with deployed(installation, unique_name, CODE, directory, model_config=CONFIG) as service:
        for direct in (False, True):
            got = service.post(request({"data": X}), direct=direct)
            assert got.status_code == 200, got.text
            check(got.content)
            bad = service.post(request({"data": X[:, :2]}), direct=direct)
            assert bad.status_code == 400 and "input 'data'" in bad.text
            assert service.post(request({"data": X}), direct=direct).content == got.content
