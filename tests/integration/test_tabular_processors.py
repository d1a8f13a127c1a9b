"""Each tabular processor deployed through the real installation from a description naming
only ``processor`` and ``model_path`` (no user code), each from another kind of source —
a local file, a local directory, an http(s) archive, an ``eascmd upload`` URI — and called
through the gateway and directly; answers equal each other and the library's own prediction.
Bad input is answered 400 and the instance keeps serving; a model of the wrong kind fails
the instance with a reason `eascmd w` shows."""

from __future__ import annotations

import json
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest

from eas_core.sdk import ServiceStatus
from tests.processors.tabular_models import (
    close,
    heart_pmml,
    probabilities,
    records,
    sparse_expected,
    sparse_model,
)
from tests.support.installation import Installation, wait_for

pytest.importorskip("jpmml_evaluator", reason="the pmml extra is not installed")
xgb = pytest.importorskip("xgboost", reason="the xgboost extra is not installed")
lgb = pytest.importorskip("lightgbm", reason="the lightgbm extra is not installed")


@dataclass
class Deployment:
    """A model on disk, how the description names it, and what it must answer."""

    code: str
    source: Callable[[str, Installation], str]  # (http base URL, installation) → model_path
    body: bytes
    expected: Any
    bad: bytes  # a body answered 400
    bad_needle: str


def tar_gz(directory: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        for path in sorted(directory.iterdir()):
            tar.add(path, arcname=path.name)
    return dest


def upload(installation: Installation, path: Path) -> str:
    uri: str = installation.eascmd_json("upload", str(path))["uri"]
    return uri


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The models' directory; its ``served/`` folder is what the http server serves."""
    path = tmp_path_factory.mktemp("tabular")
    (path / "served").mkdir()
    return path


@pytest.fixture(scope="module")
def models(root: Path) -> dict[str, Deployment]:
    served = root / "served"
    deployments: dict[str, Deployment] = {}

    path, model, frame = heart_pmml(root)
    rows = records(frame)
    deployments["pmml"] = Deployment(
        "pmml",
        lambda base, inst, p=path: str(p),  # a local file
        json.dumps(rows).encode(),
        probabilities(model.predict_proba(frame), [0, 1]),
        json.dumps([{**rows[0], "age": "old"}]).encode(),
        "field 'age'",
    )

    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    iris = load_iris(as_frame=True)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(iris.data, iris.target)
    joblib.dump(forest, root / "iris.joblib")
    sample = iris.data.iloc[::40]
    deployments["sklearn"] = Deployment(
        "sklearn",
        lambda base, inst: upload(inst, root / "iris.joblib"),  # an eascmd upload URI
        json.dumps(records(sample)).encode(),
        probabilities(forest.predict_proba(sample), forest.classes_),
        b'[{"sepal length (cm)": 1}]',
        "missing field(s)",
    )

    frame_x = iris.data
    target = (iris.target == 2).astype(int)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(frame_x, target), 10)
    (root / "xgb").mkdir()
    booster.save_model(root / "xgb" / "model.json")
    tar_gz(root / "xgb", served / "xgb-model.tar.gz")
    p1 = booster.predict(xgb.DMatrix(sample))
    deployments["xgboost"] = Deployment(
        "xgboost",
        lambda base, inst: f"{base}/xgb-model.tar.gz",  # an http archive
        json.dumps(records(sample)).encode(),
        probabilities(np.stack([1 - p1, p1], axis=1), [0, 1]),
        b'[{"petal width (cm)": "wide"}]',
        "expected a number",
    )

    lgbm = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(frame_x, iris.target),
        10,
    )
    (root / "lgbm").mkdir()
    lgbm.save_model(root / "lgbm" / "model.txt")
    (root / "lgbm" / "README").write_text("trained on iris\n")
    deployments["lightgbm"] = Deployment(
        "lightgbm",
        lambda base, inst: str(root / "lgbm"),  # a local directory
        json.dumps(sample.to_numpy().tolist()).encode(),
        probabilities(lgbm.predict(sample), [0, 1, 2]),
        b"[[1, 2, 3]]",
        "the model takes 4 values, got 3",
    )

    sparse_root = root / "sparse"
    sparse_root.mkdir()
    sparse_path, dense, bias = sparse_model(sparse_root, 50_000)
    tar_gz(sparse_path, served / "sparse.tgz")
    sparse_records = [{"0": 1, "3": 2}, {"30": 1, "99999": 0.5, "7": 1}]
    deployments["parameter_sever"] = Deployment(
        "parameter_sever",
        lambda base, inst: f"{base}/sparse.tgz",
        json.dumps(sparse_records).encode(),
        sparse_expected(sparse_records, dense, bias),
        b'[{"one": 1}]',
        "feature id 'one'",
    )
    return deployments


@pytest.fixture(scope="module")
def http_base(root: Path, models: dict[str, Deployment]) -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(root / "served"))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def describe(name: str, code: str, model_path: str) -> dict[str, Any]:
    return {
        "name": name,
        "processor": code,
        "model_path": model_path,
        "metadata": {"instance": 1, "cpu": 0.1, "memory": 512},
    }


def direct(installation: Installation, name: str, body: bytes, token: str) -> httpx.Response:
    [instance] = installation.client.list_instances(name)
    url = f"http://{instance.ip}:{instance.port}/api/predict/{name}"
    return httpx.post(url, content=body, headers={"Authorization": token}, timeout=30)


@pytest.mark.parametrize("code", ["pmml", "sklearn", "xgboost", "lightgbm", "parameter_sever"])
def test_processor_deploys_from_a_description_and_answers_like_its_library(
    installation: Installation,
    models: dict[str, Deployment],
    http_base: str,
    unique_name: str,
    tmp_path: Path,
    code: str,
) -> None:
    deployment = models[code]
    description = tmp_path / "service.json"
    description.write_text(
        json.dumps(describe(unique_name, code, deployment.source(http_base, installation)))
    )
    installation.eascmd("create", str(description))  # waits until running
    token = installation.client.describe_service(unique_name).access_token
    via_gateway = installation.predict(unique_name, deployment.body, token)
    assert via_gateway.status_code == 200, via_gateway.text
    close(via_gateway.json(), deployment.expected)
    via_instance = direct(installation, unique_name, deployment.body, token)
    assert (via_instance.status_code, via_instance.content) == (200, via_gateway.content)

    refused = installation.predict(unique_name, deployment.bad, token)
    assert refused.status_code == 400
    assert deployment.bad_needle in refused.json()["error"], refused.text
    assert installation.predict(unique_name, b"{not json", token).status_code == 400
    again = installation.predict(unique_name, deployment.body, token)
    assert (again.status_code, again.content) == (200, via_gateway.content)


@pytest.mark.parametrize(
    ("code", "model", "reason"),
    [
        ("pmml", "iris.joblib", "iris.joblib is not a PMML document"),
        ("xgboost", "heart_disease.pmml", "heart_disease.pmml"),
        ("parameter_sever", "iris.joblib", "iris.joblib is not a sparse LR model"),
    ],
)
def test_a_model_of_the_wrong_kind_fails_its_instance_with_the_reason(
    installation: Installation,
    root: Path,
    models: dict[str, Deployment],
    unique_name: str,
    code: str,
    model: str,
    reason: str,
) -> None:
    installation.client.create_service(describe(unique_name, code, str(root / model)))
    info = wait_for(
        lambda: (
            (d := installation.client.describe_service(unique_name)).status == ServiceStatus.FAILED
            and d
        ),
        timeout=90,
        what="the service to fail",
    )
    assert reason in info.message, info.message
    shown = installation.eascmd("w", unique_name).stdout
    assert reason in shown, shown


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"processor": "alink_pai_processor"}, "processor", "PAI-EAS processor this installation"),
        ({"processor": "easy_nlp_cpu_tf1.12"}, "processor", "(supported: "),
        ({"processor": "pytorch_gpu_1.6"}, "processor", "runs on a GPU, and no node"),
        ({"metadata": {"instance": 1, "gpu": 1}}, "metadata.gpu", "GPUs per instance"),
    ],
)
def test_codes_not_served_and_gpu_requests_are_refused_at_create(
    installation: Installation,
    unique_name: str,
    tmp_path: Path,
    change: dict[str, Any],
    field: str,
    message: str,
) -> None:
    document = {**describe(unique_name, "pmml", str(tmp_path)), **change}
    (tmp_path / "service.json").write_text(json.dumps(document))
    result = installation.eascmd("create", str(tmp_path / "service.json"), check=False)
    assert result.returncode != 0
    assert f"{field}:" in result.stderr + result.stdout
    output = result.stderr + result.stdout
    assert message in output, output
    if "supported: " in output:  # the list of what this installation serves
        listed = output.split("supported: ", 1)[1].split(";", 1)[0].split(", ")
        assert {"pmml", "sklearn", "xgboost", "lightgbm", "parameter_sever"} <= set(listed)
    assert unique_name not in {s.service_name for s in installation.client.list_services()}
