"""TFRequest and TorchRequest against deployed TensorFlow and PyTorch services: the official
PAI-EAS SDK (`eas-prediction`, in its own virtualenv) and ours, through the gateway with the
token and direct to the instance."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from eas_core.sdk import (
    ENDPOINT_TYPE_DIRECT,
    PredictClient,
    PredictException,
    TFRequest,
    TFResponse,
    TorchRequest,
    TorchResponse,
)
from tests.processors import tensor_models as models
from tests.processors.service import Deployed, deployed
from tests.support.installation import REPO, Installation
from tests.support.official_sdk import SDKInstallError, ensure_sdk_venv

tf = pytest.importorskip("tensorflow", reason="the tensorflow extra is not installed")
torch = pytest.importorskip("torch", reason="the torch extra is not installed")

pytestmark = pytest.mark.timeout(900)

IMAGES = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0]], np.float32)
X = np.arange(6, dtype=np.float32).reshape(2, 3)
IDS = np.array([2, 9], np.int64)


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tensor_requests")
    saved_model, keras_model = models.keras_classifier(root)
    modules = models.torch_modules(root)
    scores = keras_model.predict(IMAGES, verbose=0)
    with torch.inference_mode():
        first, second = torch.jit.load(str(modules["multi"]))(
            torch.from_numpy(X), torch.from_numpy(IDS)
        )
    return {
        "saved_model": saved_model,
        "torchscript": modules["multi"],
        "scores": scores,
        "top": scores.argmax(axis=1),
        "first": first.numpy(),
        "second": second.numpy(),
    }


@pytest.fixture(scope="module")
def services(installation: Installation, expected: dict[str, Any]) -> Iterator[dict[str, Deployed]]:
    with (
        deployed(installation, "tensor_requests_tf", "tensorflow_cpu_1.15", expected["saved_model"])
        as tf_service,
        deployed(installation, "tensor_requests_torch", "pytorch_cpu_1.6", expected["torchscript"])
        as torch_service,
    ):  # fmt: skip
        yield {"tf": tf_service, "torch": torch_service}


def client(service: Deployed, direct: bool) -> PredictClient:
    predict = PredictClient(service.gateway, service.name)
    predict.set_token(service.token)
    if direct:
        predict.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    predict.init()
    return predict


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_our_tf_request(
    services: dict[str, Deployed], expected: dict[str, Any], direct: bool
) -> None:
    predict = client(services["tf"], direct)
    try:
        request = TFRequest("predict_images")
        request.add_feed("images", [2, 4], TFRequest.DT_FLOAT, IMAGES.ravel().tolist())
        response = predict.predict(request)
        assert isinstance(response, TFResponse)
        assert response.get_tensor_shape("scores") == [2, 3]
        np.testing.assert_allclose(
            list(response.get_values("scores")), expected["scores"].ravel(), atol=1e-5
        )
        # numpy in and out, one output asked for.
        request = TFRequest()
        request.add_feed_array("images", IMAGES)
        request.add_fetch("top")
        response = predict.predict(request)
        assert list(response.response.outputs) == ["top"]
        np.testing.assert_array_equal(response.get_array("top"), expected["top"])
        bad = TFRequest()
        bad.add_feed_array("images", IMAGES.astype(np.float64))
        with pytest.raises(PredictException) as error:
            predict.predict(bad)
        assert error.value.code == 400 and "the model takes DT_FLOAT" in error.value.message
    finally:
        predict.destroy()


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "direct"])
def test_our_torch_request(
    services: dict[str, Deployed], expected: dict[str, Any], direct: bool
) -> None:
    predict = client(services["torch"], direct)
    try:
        request = TorchRequest()
        request.add_feed(0, [2, 3], TorchRequest.DT_FLOAT, X.ravel().tolist())
        request.add_feed_array(1, IDS)
        response = predict.predict(request)
        assert isinstance(response, TorchResponse)
        assert response.get_tensor_shape(0) == [2, 2]
        np.testing.assert_allclose(response.get_array(0), expected["first"], atol=1e-5)
        assert list(response.get_values(1)) == expected["second"].tolist()
        request.add_fetch(1)
        response = predict.predict(request)
        np.testing.assert_array_equal(response.get_array(0), expected["second"])
    finally:
        predict.destroy()


# Written as a PAI-EAS user would. Prints `RESULT <json>` (the SDK logs to stdout too).
OFFICIAL_SCRIPT = """
import json, sys, time
from eas_prediction import (ENDPOINT_TYPE_DIRECT, PredictClient, PredictException, TFRequest,
                            TorchRequest)

endpoint, tf_service, tf_token, torch_service, torch_token = sys.argv[1:6]
images = json.loads(sys.argv[6]); x = json.loads(sys.argv[7]); ids = json.loads(sys.argv[8])

def make_client(service, token, direct):
    client = PredictClient(endpoint, service)
    client.set_token(token)
    if direct:
        client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    client.init()
    return client

def predict(client, request):
    for attempt in range(3):  # the first discovery sync may lag init()
        try:
            return client.predict(request)
        except PredictException as exc:
            if "Get service backend timeout" in str(exc.message) and attempt < 2:
                time.sleep(1)
                continue
            raise

def tf_request():
    request = TFRequest("predict_images")
    request.add_feed("images", [2, 4], TFRequest.DT_FLOAT, images)
    return request

def torch_request():
    request = TorchRequest()
    request.add_feed(0, [2, 3], TorchRequest.DT_FLOAT, x)
    request.add_feed(1, [2], TorchRequest.DT_INT64, ids)
    return request

results = {"tf_bytes": tf_request().to_string().hex(),
           "torch_bytes": torch_request().to_string().hex()}
for mode, direct in (("gateway", False), ("direct", True)):
    client = make_client(tf_service, tf_token, direct)
    response = predict(client, tf_request())
    results[mode + "_tf"] = {
        "shape": response.get_tensor_shape("scores"),
        "scores": list(response.get_values("scores")),
        "top": list(response.get_values("top")),
    }
    client.destroy()
    client = make_client(torch_service, torch_token, direct)
    response = predict(client, torch_request())
    results[mode + "_torch"] = {
        "shape": response.get_tensor_shape(0),
        "first": list(response.get_values(0)),
        "second": list(response.get_values(1)),
    }
    client.destroy()
print("RESULT " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def official(services: dict[str, Deployed], installation: Installation) -> dict[str, Any]:
    try:
        python = ensure_sdk_venv()
    except SDKInstallError as exc:
        pytest.fail(f"could not install the official SDK:\n{exc}", pytrace=False)
    args = [
        f"127.0.0.1:{installation.gateway_port}",
        services["tf"].name,
        services["tf"].token,
        services["torch"].name,
        services["torch"].token,
        json.dumps(IMAGES.ravel().tolist()),
        json.dumps(X.ravel().tolist()),
        json.dumps(IDS.tolist()),
    ]
    done = subprocess.run(
        [str(python), "-c", OFFICIAL_SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and len(lines) == 1, (done.stdout, done.stderr)
    result: dict[str, Any] = json.loads(lines[0].removeprefix("RESULT "))
    return result


@pytest.mark.sdk
@pytest.mark.parametrize("mode", ["gateway", "direct"])
def test_official_tf_request(official: dict[str, Any], expected: dict[str, Any], mode: str) -> None:
    answer = official[f"{mode}_tf"]
    assert answer["shape"] == [2, 3]
    np.testing.assert_allclose(answer["scores"], expected["scores"].ravel(), atol=1e-5)
    assert answer["top"] == expected["top"].tolist()


@pytest.mark.sdk
@pytest.mark.parametrize("mode", ["gateway", "direct"])
def test_official_torch_request(
    official: dict[str, Any], expected: dict[str, Any], mode: str
) -> None:
    answer = official[f"{mode}_torch"]
    assert answer["shape"] == [2, 2]
    np.testing.assert_allclose(answer["first"], expected["first"].ravel(), atol=1e-5)
    assert answer["second"] == expected["second"].tolist()


@pytest.mark.sdk
def test_our_requests_are_byte_identical_to_the_official_ones(official: dict[str, Any]) -> None:
    ours = TFRequest("predict_images")
    ours.add_feed("images", [2, 4], TFRequest.DT_FLOAT, IMAGES.ravel().tolist())
    assert ours.to_string().hex() == official["tf_bytes"]
    torch_request = TorchRequest()
    torch_request.add_feed(0, [2, 3], TorchRequest.DT_FLOAT, X.ravel().tolist())
    torch_request.add_feed(1, [2], TorchRequest.DT_INT64, IDS.tolist())
    assert torch_request.to_string().hex() == official["torch_bytes"]


def test_readme_tensor_snippet_runs(services: dict[str, Deployed]) -> None:
    """The README's TFRequest snippet (its `py` block), with a client for the TF service."""
    [snippet] = re.findall(r"```py\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    service = services["tf"]
    setup = (
        f"client = PredictClient({service.gateway!r}, {service.name!r})\n"
        f"client.set_token({service.token!r})\nclient.init()\n"
    )
    lines = snippet.splitlines()
    program = "\n".join([lines[0], setup, *lines[1:], "print(scores.shape)"])
    ran = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "(1, 3)", ran.stderr


def test_responses_parse_without_a_server() -> None:
    """The response classes read what the processors write (no server needed)."""
    from processors.wire import pytorch_predict_pb2, tensors, tf_request_pb2

    tf_answer = tf_request_pb2.PredictResponse()
    tensors.fill(tf_answer.outputs["flag"], np.array([True, False]))
    response = TFResponse(tf_answer.SerializeToString())
    assert list(response.get_values("flag")) == [True, False]
    with pytest.raises(KeyError, match="no output 'nope'"):
        response.get_values("nope")
    torch_answer = pytorch_predict_pb2.PredictResponse()
    tensors.fill(torch_answer.map_outputs["mask"], np.array([[True], [False]]))
    parsed = TorchResponse(torch_answer.SerializeToString())
    assert parsed.get_tensor_shape_map("mask") == [2, 1]
    assert list(parsed.get_values_map("mask")) == [1, 0]
    np.testing.assert_array_equal(parsed.get_array_map("mask"), [[True], [False]])
    with pytest.raises(IndexError, match="output 0 is not in the response"):
        parsed.get_array(0)
