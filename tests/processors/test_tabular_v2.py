"""The Open Inference Protocol on the tabular built-ins (sklearn, xgboost, lightgbm): a 2-D
tensor of features in, ``predict_proba`` or ``predict`` out, in-process and, for sklearn,
through a real installation with Triton's own client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from processors.base import RequestContext, normalize_reply
from tests.processors.contract import Case, load
from tests.processors.service import deployed
from tests.support.installation import Installation

pytest.importorskip("sklearn", reason="the sklearn extra is not installed")

import joblib
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

SERVICE = "tabular"
INFER = f"/v2/models/{SERVICE}/infer"


def context(headers: dict[str, str] | None = None) -> RequestContext:
    return RequestContext(SERVICE, INFER, headers=headers or {})


def v2_body(matrix: np.ndarray[Any, Any], datatype: str = "FP64", **extra: Any) -> bytes:
    tensor = {"name": "x", "shape": list(matrix.shape), "datatype": datatype}
    return json.dumps({"inputs": [{**tensor, "data": matrix.ravel().tolist()}], **extra}).encode()


def answer(processor: Any, body: bytes, headers: dict[str, str] | None = None) -> Any:
    reply = normalize_reply(processor.process(body, context(headers)))
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, np.ndarray[Any, Any]]:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    path = tmp_path_factory.mktemp("iris") / "iris.joblib"
    joblib.dump(model, path)
    return path, model, x[::30]


def test_sklearn_classifier_answers_predict_proba(
    iris: tuple[Path, Any, np.ndarray[Any, Any]],
) -> None:
    path, model, sample = iris
    processor = load(Case("sklearn", str(path), b"", lambda _: None))
    meta = processor.v2_metadata()  # type: ignore[attr-defined]
    assert meta == {
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}],
    }
    got = answer(processor, v2_body(sample))
    (output,) = got["outputs"]
    assert output["name"] == "predict_proba" and output["shape"] == [len(sample), 3]
    np.testing.assert_array_equal(
        np.array(output["data"]).reshape(-1, 3), model.predict_proba(sample)
    )
    # FP32 features are taken as well (widened exactly).
    as_fp32 = answer(processor, v2_body(sample.astype(np.float32), "FP32"))
    assert as_fp32["outputs"][0]["shape"] == [len(sample), 3]


def test_sklearn_regressor_answers_predict_and_binary(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(x, y)
    joblib.dump(model, tmp_path / "model.joblib")
    processor = load(Case("sklearn", str(tmp_path / "model.joblib"), b"", lambda _: None))
    sample = x[:5]
    raw = sample.astype("<f8").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [5, 10],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    ).encode()
    reply = normalize_reply(
        processor.process(
            header + raw, context({"inference-header-content-length": str(len(header))})
        )
    )
    assert reply.status == 200, reply.body
    length = int(dict(reply.headers)["inference-header-content-length"])
    document = json.loads(reply.body[:length])
    assert document["outputs"][0]["parameters"] == {"binary_data_size": 5 * 8}
    np.testing.assert_array_equal(np.frombuffer(reply.body[length:], "<f8"), model.predict(sample))


def test_wrong_tensors_are_refused_naming_the_problem(
    iris: tuple[Path, Any, np.ndarray[Any, Any]],
) -> None:
    processor = load(Case("sklearn", str(iris[0]), b"", lambda _: None))
    wrong = [
        (v2_body(np.ones((2, 3))), "record 0: the model takes 4 values, got 3"),
        (v2_body(np.ones(4)), "must be a 2-D numeric tensor [records, features], got FP64 [4]"),
        (
            json.dumps(
                {
                    "inputs": [
                        {"name": "a", "shape": [1, 4], "datatype": "FP64", "data": [1] * 4},
                        {"name": "b", "shape": [1, 4], "datatype": "FP64", "data": [1] * 4},
                    ]
                }
            ).encode(),
            "this model takes one 2-D tensor of features, got 2",
        ),
        (
            v2_body(np.ones((1, 4)), outputs=[{"name": "predict"}]),
            "the model has no output 'predict' (it answers predict_proba)",
        ),
    ]
    for body, message in wrong:
        reply = normalize_reply(processor.process(body, context()))
        assert reply.status == 400 and message in json.loads(reply.body)["error"], reply.body


def test_a_batch_mixes_v2_and_records(iris: tuple[Path, Any, np.ndarray[Any, Any]]) -> None:
    path, model, sample = iris
    processor = load(Case("sklearn", str(path), b"", lambda _: None))
    bodies = [v2_body(sample), json.dumps(sample[:2].tolist()).encode(), v2_body(np.ones((1, 3)))]
    ctxs = [context(), RequestContext(SERVICE, f"/api/predict/{SERVICE}"), context()]
    replies = [normalize_reply(r) for r in processor.process_batch(bodies, ctxs)]  # type: ignore[attr-defined]
    assert [r.status for r in replies] == [200, 200, 400]
    assert replies[0].body == normalize_reply(processor.process(bodies[0], ctxs[0])).body
    assert json.loads(replies[1].body)[0]["p_0"] == model.predict_proba(sample[:1])[0][0]


def test_boosters_speak_v2(tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost", reason="the xgboost extra is not installed")
    lgb = pytest.importorskip("lightgbm", reason="the lightgbm extra is not installed")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, y), 10)
    booster.save_model(tmp_path / "model.json")
    regressor = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(x, x[:, 0]), 10)
    regressor.save_model(str(tmp_path / "model.txt"))
    sample = x[:3]
    xgb_processor = load(Case("xgboost", str(tmp_path / "model.json"), b"", lambda _: None))
    assert xgb_processor.v2_metadata()["platform"] == "xgboost"  # type: ignore[attr-defined]
    got = answer(xgb_processor, v2_body(sample))["outputs"][0]
    p1 = booster.predict(xgb.DMatrix(sample))
    np.testing.assert_allclose(np.array(got["data"]).reshape(-1, 2)[:, 1], p1, rtol=1e-6)
    lgb_processor = load(Case("lightgbm", str(tmp_path / "model.txt"), b"", lambda _: None))
    meta = lgb_processor.v2_metadata()  # type: ignore[attr-defined]
    assert meta["platform"] == "lightgbm" and meta["outputs"][0]["name"] == "predict"
    got = answer(lgb_processor, v2_body(sample))["outputs"][0]
    np.testing.assert_allclose(got["data"], regressor.predict(sample), rtol=1e-12)


def test_sklearn_through_tritonclient(
    installation: Installation,
    unique_name: str,
    iris: tuple[Path, Any, np.ndarray[Any, Any]],
) -> None:
    httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is missing")
    path, model, sample = iris
    with deployed(installation, unique_name, "sklearn", path) as service:
        headers = {"Authorization": service.token}
        for base in (service.gateway, service.direct):
            client = httpclient.InferenceServerClient(url=base.removeprefix("http://"))
            meta = client.get_model_metadata(unique_name, headers=headers)
            assert meta["platform"] == "sklearn"
            for binary in (False, True):
                given = httpclient.InferInput("x", list(sample.shape), "FP64")
                given.set_data_from_numpy(sample, binary_data=binary)
                wanted = [httpclient.InferRequestedOutput("predict_proba", binary_data=binary)]
                # A dict of its own: tritonclient writes the binary header's length into it.
                result = client.infer(unique_name, [given], outputs=wanted, headers=dict(headers))
                np.testing.assert_array_equal(
                    result.as_numpy("predict_proba"), model.predict_proba(sample)
                )
