"""The TensorFlow processor: SavedModels built with Keras / tf.Module at test time, answers
compared with TensorFlow's own in-process prediction, in-process and through a real
installation (gateway and direct, POST and GET)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eas_core.sdk import ServiceStatus
from processors.base import ProcessorLoadError, RequestContext
from processors.wire import tensors
from processors.wire import tf_request_pb2 as pb
from tests.processors import tensor_models as models
from tests.processors.contract import Case, call, check_contract, context, load
from tests.processors.service import deployed
from tests.support.installation import Installation, wait_for

tf = pytest.importorskip("tensorflow", reason="the tensorflow extra is not installed")

CODE = "tensorflow_cpu_1.15"
ROWS = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0], [3.0, 0.0, -2.0, 1.0]], np.float32)


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    return models.keras_classifier(tmp_path_factory.mktemp("tf"))


@pytest.fixture(scope="module")
def many_dtypes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.tf_many_dtypes(tmp_path_factory.mktemp("tf_many"))


def request(
    feed: dict[str, Any], signature: str = "", fetch: tuple[str, ...] = (), **dtypes: int
) -> bytes:
    message = pb.PredictRequest(signature_name=signature, output_filter=list(fetch))
    for name, value in feed.items():
        tensors.fill(message.inputs[name], value, name)
        if name in dtypes:
            message.inputs[name].dtype = dtypes[name]
    return message.SerializeToString()


def outputs(body: bytes) -> dict[str, np.ndarray[Any, Any]]:
    response = pb.PredictResponse()
    response.ParseFromString(body)
    return {name: tensors.to_array(proto, name) for name, proto in response.outputs.items()}


def check_scores(model: Any, x: np.ndarray[Any, Any]) -> Any:
    expected = model.predict(x, verbose=0)

    def check(body: bytes) -> None:
        got = outputs(body)
        assert set(got) == {"scores", "top"}
        assert got["scores"].dtype == np.float32 and got["scores"].shape == expected.shape
        np.testing.assert_allclose(got["scores"], expected, atol=1e-5)
        np.testing.assert_array_equal(got["top"], expected.argmax(axis=1))

    return check


def test_contract(keras_model: tuple[Path, Any]) -> None:
    path, model = keras_model
    good = {"images": ROWS}
    check_contract(
        Case(
            code=CODE,
            model_entry=str(path),
            request=request(good),
            check=check_scores(model, ROWS),
            bad_requests=[
                (b"\x0a\xff\xff\xff", "malformed request body"),
                (request(good, images=pb.DT_DOUBLE), "input 'images'"),
                (request({"images": ROWS.astype(np.float64)}), "the model takes DT_FLOAT"),
                (request({"images": ROWS[:, :3]}), "input 'images': shape [3, 3] does not match"),
                (request({"pixels": ROWS}), "unknown input 'pixels'"),
                (request({}), "missing input 'images'"),
                (request(good, signature="nope"), "no signature 'nope'"),
                (request(good, fetch=("nope",)), "output_filter: unknown output 'nope'"),
            ],
            batch_exact=False,  # Eigen's matrix product sums differently for 1 and 3 rows
        )
    )


def test_get_answers_the_signature(keras_model: tuple[Path, Any]) -> None:
    processor = load(Case(CODE, str(keras_model[0]), b"", lambda _: None))
    body, status = call(processor, b"", context(method="GET"))
    assert status == 200
    assert json.loads(body) == {
        "signature_name": "predict_images",
        "inputs": [{"name": "images", "shape": [-1, 4], "type": "DT_FLOAT"}],
        "outputs": [
            {"name": "scores", "shape": [-1, 3], "type": "DT_FLOAT"},
            {"name": "top", "shape": [-1], "type": "DT_INT64"},
        ],
    }


def test_output_filter_and_named_signature(keras_model: tuple[Path, Any]) -> None:
    path, model = keras_model
    processor = load(Case(CODE, str(path), b"", lambda _: None))
    body, status = call(processor, request({"images": ROWS}, "predict_images", ("top",)))
    assert status == 200
    got = outputs(body)
    assert list(got) == ["top"]
    np.testing.assert_array_equal(got["top"], model.predict(ROWS, verbose=0).argmax(axis=1))


def test_every_dtype_matches_tensorflow(many_dtypes: Path) -> None:
    feed = models.many_dtype_feed(rows=3)
    expected = {
        name: value.numpy()
        for name, value in tf.saved_model.load(str(many_dtypes))
        .signatures["serving_default"](**{k: tf.constant(v) for k, v in feed.items()})
        .items()
    }
    processor = load(Case(CODE, str(many_dtypes), b"", lambda _: None))
    body, status = call(processor, request(feed))
    assert status == 200, body
    got = outputs(body)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype, name
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    # The wire dtypes the answer carries are the model's.
    response = pb.PredictResponse.FromString(body)
    assert response.outputs["h_twice"].dtype == pb.DT_HALF
    assert response.outputs["bf_twice"].dtype == pb.DT_BFLOAT16
    assert response.outputs["u16_plus"].dtype == pb.DT_UINT16
    assert response.outputs["s_upper"].dtype == pb.DT_STRING


@pytest.mark.parametrize(
    ("name", "wire", "needle"),
    [
        ("i8", pb.DT_INT16, "input 'i8': the model takes DT_INT8, the request sent DT_INT16"),
        ("b", pb.DT_INT32, "input 'b': the model takes DT_BOOL"),
        ("s", pb.DT_FLOAT, "input 's'"),
    ],
)
def test_wrong_dtype_names_the_input(many_dtypes: Path, name: str, wire: int, needle: str) -> None:
    feed = models.many_dtype_feed(rows=2)
    message = pb.PredictRequest.FromString(request(feed))
    proto = message.inputs[name]
    proto.Clear()
    tensors.fill(proto, np.array([1, 0]), name, dtype=wire)
    processor = load(Case(CODE, str(many_dtypes), b"", lambda _: None))
    body, status = call(processor, message.SerializeToString())
    assert status == 400 and needle in body.decode(), body


def test_int_val_out_of_range_is_refused(many_dtypes: Path) -> None:
    message = pb.PredictRequest.FromString(request(models.many_dtype_feed(rows=2)))
    message.inputs["u8"].int_val[0] = 256
    processor = load(Case(CODE, str(many_dtypes), b"", lambda _: None))
    body, status = call(processor, message.SerializeToString())
    assert status == 400 and b"input 'u8'" in body and b"range" in body


def test_fixed_shape_signature(many_dtypes: Path) -> None:
    processor = load(Case(CODE, str(many_dtypes), b"", lambda _: None))
    x = np.arange(4, dtype=np.float32).reshape(2, 2)
    body, status = call(processor, request({"x": x}, "fixed"))
    assert status == 200
    np.testing.assert_array_equal(outputs(body)["y"], x * 2)
    body, status = call(processor, request({"x": np.ones((3, 2), np.float32)}, "fixed"))
    assert status == 400 and b"input 'x': shape [3, 2] does not match the model's [2, 2]" in body
    # A batch of fixed-shape calls cannot be stacked: each still gets its own answer.
    answers = processor.process_batch(  # type: ignore[attr-defined]
        [request({"x": x}, "fixed")] * 2, [context()] * 2
    )
    assert [status for _, status in answers] == [200, 200]
    body, status = call(processor, b"", context(method="GET"))
    assert json.loads(body)["signature_name"] == "serving_default"
    body, status = call(
        processor, b"", RequestContext("s", "/", "signature_name=fixed", method="GET")
    )
    assert json.loads(body)["inputs"] == [{"name": "x", "shape": [2, 2], "type": "DT_FLOAT"}]


def test_batch_of_different_sizes_splits_back(keras_model: tuple[Path, Any]) -> None:
    path, model = keras_model
    processor = load(Case(CODE, str(path), b"", lambda _: None))
    parts = [ROWS[:1], ROWS, ROWS[1:]]
    bodies = [request({"images": p}) for p in parts]
    bodies.insert(2, request({"images": np.ones((2, 5), np.float32)}))  # other trailing dims
    bodies.append(b"\xff\xff")
    answers = processor.process_batch(bodies, [context()] * len(bodies))  # type: ignore[attr-defined]
    assert [status for _, status in answers] == [200, 200, 400, 200, 400]
    assert b"input 'images': shape [2, 5]" in answers[2][0]
    for part, (body, _) in zip(parts, [answers[0], answers[1], answers[3]], strict=True):
        check_scores(model, part)(body)
        alone, _ = call(processor, request({"images": part}))
        np.testing.assert_allclose(outputs(body)["scores"], outputs(alone)["scores"], atol=1e-6)


def test_model_of_the_wrong_kind_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 not a SavedModel")
    with pytest.raises(ProcessorLoadError, match=r"model\.pt is not a TensorFlow SavedModel"):
        load(Case(CODE, str(tmp_path / "model.pt"), b"", lambda _: None))
    with pytest.raises(ProcessorLoadError, match=r"holds no saved_model\.pb"):
        load(Case(CODE, str(tmp_path), b"", lambda _: None))
    (tmp_path / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(ProcessorLoadError, match="TensorFlow cannot load the SavedModel"):
        load(Case(CODE, str(tmp_path), b"", lambda _: None))


def test_serving_layout_picks_the_highest_version(
    keras_model: tuple[Path, Any], tmp_path: Path
) -> None:
    import shutil

    shutil.copytree(keras_model[0], tmp_path / "7")
    (tmp_path / "3").mkdir()
    processor = load(Case(CODE, str(tmp_path), b"", lambda _: None))
    assert call(processor, request({"images": ROWS}))[1] == 200


def test_deployed_through_the_installation(
    installation: Installation, unique_name: str, keras_model: tuple[Path, Any]
) -> None:
    path, model = keras_model
    check = check_scores(model, ROWS)
    with deployed(installation, unique_name, CODE, path) as service:
        for direct in (False, True):
            answer = service.post(request({"images": ROWS}), direct=direct)
            assert answer.status_code == 200, answer.text
            check(answer.content)
            signature = service.get(direct=direct)
            assert signature.status_code == 200, signature.text
            assert json.loads(signature.content)["signature_name"] == "predict_images"
            bad = service.post(request({"images": ROWS[:, :2]}), direct=direct)
            assert bad.status_code == 400 and "input 'images'" in bad.text
            check(service.post(request({"images": ROWS}), direct=direct).content)


def test_wrong_model_fails_the_instance_with_the_reason(
    installation: Installation, unique_name: str, tmp_path: Path
) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"not a saved model")
    client = installation.client
    client.create_service(
        {
            "name": unique_name,
            "processor": CODE,
            "model_path": str(model),
            "metadata": {"instance": 1, "cpu": 1, "memory": 2000},
        }
    )
    info = wait_for(
        lambda: (d := client.describe_service(unique_name)).status == ServiceStatus.FAILED and d,
        timeout=180,
        what="the service to fail",
    )
    assert "model.pt is not a TensorFlow SavedModel" in info.message
    assert "is not a TensorFlow SavedModel" in client.list_instances(unique_name)[0].reason
