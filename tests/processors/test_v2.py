"""The Open Inference Protocol (v2 REST) on the tensor built-ins, called by Triton's own client
(tritonclient[http], unchanged) through the gateway with the service token and directly on
the instance, in JSON and with the binary tensor extension; and malformed calls answered
400/404 as the protocol's ``{"error": ...}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.processors import tensor_models as models
from tests.processors.service import Deployed, deployed
from tests.support.installation import Installation

httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is missing")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException

X = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0], [3.0, 0.0, -2.0, 1.0]], np.float32)
TORCH_CONFIG = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "probs", "datatype": "FP32", "shape": [-1, 3]}],
}


def clients(service: Deployed) -> list[tuple[str, Any]]:
    """(how, client) for the gateway and for the instance itself."""
    return [
        (how, httpclient.InferenceServerClient(url=base.removeprefix("http://")))
        for how, base in (("gateway", service.gateway), ("direct", service.direct))
    ]


def infer(
    client: Any, service: Deployed, x: np.ndarray[Any, Any], outputs: list[str], binary: bool
) -> Any:
    given = httpclient.InferInput("x", list(x.shape), "FP32")
    given.set_data_from_numpy(x, binary_data=binary)
    wanted = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in outputs]
    return client.infer(
        service.name, [given], outputs=wanted, headers={"Authorization": service.token}
    )


def check_metadata(
    client: Any, service: Deployed, platform: str, inputs: list[dict[str, Any]], version: str
) -> None:
    headers = {"Authorization": service.token}
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(service.name, headers=headers)
    meta = client.get_model_metadata(service.name, headers=headers)
    assert meta["name"] == service.name and meta["platform"] == platform
    assert meta["versions"] == [version]
    assert meta["inputs"] == inputs
    assert client.get_model_metadata(service.name, version, headers=headers) == meta
    with pytest.raises(InferenceServerException, match="invalid or missing token"):
        client.get_model_metadata(service.name)


def test_onnx_through_tritonclient(
    installation: Installation, unique_name: str, tmp_path: Path
) -> None:
    import onnxruntime as ort

    path, _ = models.onnx_mlp(tmp_path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want_y, want_label = session.run(None, {"x": X})
    with deployed(installation, unique_name, "onnx_cpu", path) as service:
        version = str(installation.client.describe_service(unique_name)["CurrentVersion"])
        for how, client in clients(service):
            check_metadata(
                client,
                service,
                "onnxruntime_onnx",
                [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                version,
            )
            for binary in (False, True):
                result = infer(client, service, X, ["y", "label"], binary)
                np.testing.assert_array_equal(result.as_numpy("y"), want_y, err_msg=how)
                np.testing.assert_array_equal(result.as_numpy("label"), want_label, err_msg=how)
                assert result.get_response()["model_name"] == unique_name
            only = infer(client, service, X[:1], ["label"], True)
            assert only.as_numpy("y") is None
            np.testing.assert_array_equal(only.as_numpy("label"), want_label[:1])
            with pytest.raises(InferenceServerException, match="input 'x'"):
                infer(client, service, np.ones((2, 5), np.float32), ["y"], False)
        check_malformed(service)


def test_pytorch_through_tritonclient(
    installation: Installation, unique_name: str, tmp_path: Path
) -> None:
    import torch

    path = models.torch_modules(tmp_path)["mlp"]
    with torch.inference_mode():
        want = torch.jit.load(str(path))(torch.from_numpy(X)).numpy()
    config = json.dumps(TORCH_CONFIG)
    with deployed(
        installation, unique_name, "pytorch_cpu_1.6", path, model_config=config
    ) as service:
        version = str(installation.client.describe_service(unique_name)["CurrentVersion"])
        for how, client in clients(service):
            check_metadata(client, service, "pytorch_libtorch", TORCH_CONFIG["inputs"], version)
            for binary in (False, True):
                result = infer(client, service, X, ["probs"], binary)
                np.testing.assert_array_equal(result.as_numpy("probs"), want, err_msg=how)


def check_malformed(service: Deployed) -> None:
    """What a hand-written client can get wrong, through the gateway and direct."""
    for base in (service.gateway, service.direct):
        infer_url = f"{base}/v2/models/{service.name}/infer"
        headers = {"Authorization": service.token}

        def post(body: Any, base_headers: dict[str, str] = headers, url: str = infer_url) -> Any:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            return httpx.post(url, content=content, headers=base_headers, timeout=60)

        x = {"name": "x", "shape": [3, 4], "datatype": "FP32", "data": X.ravel().tolist()}
        cases: list[tuple[Any, int, str]] = [
            (b"{broken", 400, "malformed inference request"),
            ({"inputs": []}, 400, "inputs: List should have at least 1 item"),
            ({"inputs": [{**x, "data": [1.0, 2.0]}]}, 400, "the shape needs 12 values"),
            ({"inputs": [{**x, "datatype": "FP128"}]}, 400, "'FP128' is not supported"),
            ({"inputs": [{**x, "datatype": "INT64"}]}, 400, "values must be whole numbers"),
            ({"inputs": [{**x, "datatype": "INT64", "data": list(range(12))}]}, 400, "input 'x'"),
            (
                {"inputs": [x], "outputs": [{"name": "nope"}]},
                400,
                "the model has no output 'nope'",
            ),
        ]
        for body, status, text in cases:
            answer = post(body)
            assert answer.status_code == status, (base, body, answer.text)
            assert text in answer.json()["error"], (base, body, answer.text)
        other = post({"inputs": [x]}, url=f"{base}/v2/models/{service.name}/versions/999/infer")
        assert other.status_code == 404 and "version '999'" in other.json()["error"]
        denied = post({"inputs": [x]}, {})
        assert denied.status_code == 401 and "token" in denied.json()["error"]
    unknown = httpx.get(f"{service.gateway}/v2/models/no_such_model", timeout=30)
    assert unknown.status_code == 404 and "no_such_model" in unknown.json()["error"]
