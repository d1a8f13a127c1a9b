"""``model_path`` from object stores: ``s3://`` against moto's S3-compatible server and
``oss://`` against a loopback server that checks oss2's V1 signatures, both started here.
First the fetch itself (a single object, a "directory" prefix over several listing pages,
missing keys, a wrong secret), then an installation configured with the stores' endpoints and
credentials (``EAS_S3_*``, ``EAS_OSS_*``) deploying built-in processors from them."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest

from eas_core.artefacts.fetch import fetch
from eas_core.config import ObjectStoreSettings
from eas_core.errors import ArtefactError, PayloadTooLarge
from tests.processors.tabular_models import (
    close,
    probabilities,
    records,
    sparse_expected,
    sparse_model,
)
from tests.support.installation import Installation, start_installation
from tests.support.object_stores import OSSServer, oss_server, s3_server

boto3 = pytest.importorskip("boto3", reason="the s3 extra is not installed")
pytest.importorskip("oss2", reason="the oss extra is not installed")
pytest.importorskip("moto", reason="the test extra is not installed")
pytest.importorskip("sklearn", reason="the sklearn extra is not installed")

MiB = 2**20
S3_KEYS = {"s3_access_key_id": "test-key", "s3_secret_access_key": "test-secret"}
OSS_KEY_ID, OSS_SECRET = "LTAItestkey", "oss-test-secret"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A scikit-learn classifier and a sparse LR model, with their expected answers."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("sources")
    iris = load_iris(as_frame=True)
    model = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    joblib.dump(model, root / "iris.joblib")
    sample = iris.data.iloc[::50]
    sparse_path, dense, bias = sparse_model(root, 10_000)
    sparse_records = [{"0": 1, "30": 2}, {"9": 1}]
    return {
        "iris": (root / "iris.joblib").read_bytes(),
        "iris_body": json.dumps(records(sample)).encode(),
        "iris_expected": probabilities(model.predict_proba(sample), model.classes_),
        "sparse": {p.name: p.read_bytes() for p in sparse_path.iterdir()},
        "sparse_body": json.dumps(sparse_records).encode(),
        "sparse_expected": sparse_expected(sparse_records, dense, bias),
    }


@pytest.fixture(scope="module")
def s3(files: dict[str, Any]) -> Iterator[str]:
    with s3_server() as endpoint:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_KEYS["s3_access_key_id"],
            aws_secret_access_key=S3_KEYS["s3_secret_access_key"],
        )
        client.create_bucket(Bucket="models")
        client.put_object(Bucket="models", Key="iris/model.joblib", Body=files["iris"])
        client.put_object(Bucket="models", Key="iris/", Body=b"")  # a console's folder marker
        client.put_object(Bucket="models", Key="single/iris.joblib", Body=files["iris"])
        for name, content in files["sparse"].items():
            client.put_object(Bucket="models", Key=f"sparse/v1/{name}", Body=content)
        yield endpoint


@pytest.fixture(scope="module")
def oss(files: dict[str, Any]) -> Iterator[OSSServer]:
    with oss_server(OSS_KEY_ID, OSS_SECRET) as server:
        objects = {f"lr/model/{name}": content for name, content in files["sparse"].items()}
        objects["sklearn/iris.joblib"] = files["iris"]
        # More objects under one prefix than a listing page holds (oss2 asks for 100).
        objects.update({f"many/part-{i:03d}.txt": f"{i}\n".encode() for i in range(130)})
        objects["many/nested/deep.txt"] = b"deep\n"
        server.buckets["eas-models"] = objects
        yield server


def s3_settings(endpoint: str) -> ObjectStoreSettings:
    return ObjectStoreSettings(s3_endpoint_url=endpoint, s3_region="us-east-1", **S3_KEYS)


def oss_settings(secret: str = OSS_SECRET) -> ObjectStoreSettings:
    return ObjectStoreSettings(oss_access_key_id=OSS_KEY_ID, oss_access_key_secret=secret)


def members(tar_path: Path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def get(
    source: str,
    dest: Path,
    stores: ObjectStoreSettings,
    *,
    max_bytes: int = 64 * MiB,
    endpoint: str | None = None,
) -> Path:
    dest.mkdir(exist_ok=True)
    return fetch(
        source, dest, store=None, max_bytes=max_bytes, oss_endpoint=endpoint, object_stores=stores
    )


def test_s3_object_and_prefix_are_fetched(s3: str, files: dict[str, Any], tmp_path: Path) -> None:
    got = get("s3://models/single/iris.joblib", tmp_path / "a", s3_settings(s3))
    assert (got.name, got.read_bytes()) == ("iris.joblib", files["iris"])
    tree = get("s3://models/sparse/v1", tmp_path / "b", s3_settings(s3))
    assert members(tree) == files["sparse"]


def test_s3_missing_key_and_size_limit_are_refused(s3: str, tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match="does not exist"):
        get("s3://models/nothing-here", tmp_path / "a", s3_settings(s3))
    with pytest.raises(PayloadTooLarge, match="over the limit of 1000"):
        get("s3://models/single/iris.joblib", tmp_path / "a", s3_settings(s3), max_bytes=1000)
    assert list((tmp_path / "a").iterdir()) == []


def test_oss_object_and_paged_prefix_are_fetched_with_signed_requests(
    oss: OSSServer, files: dict[str, Any], tmp_path: Path
) -> None:
    oss.requests.clear()
    source = "oss://eas-models/sklearn/iris.joblib"
    got = get(source, tmp_path / "a", oss_settings(), endpoint=oss.endpoint)
    assert got.read_bytes() == files["iris"]
    tree = get("oss://eas-models/many/", tmp_path / "b", oss_settings(), endpoint=oss.endpoint)
    got_members = members(tree)
    assert len(got_members) == 131 and got_members["nested/deep.txt"] == b"deep\n"
    listings = [path for verb, path, _ in oss.requests if verb == "GET" and "prefix=" in path]
    assert len(listings) == 2, listings  # two pages of at most 100
    assert all(status in (200, 404) for _, _, status in oss.requests), oss.requests


def test_oss_with_a_wrong_secret_is_refused_by_the_signature_check(
    oss: OSSServer, tmp_path: Path
) -> None:
    oss.requests.clear()
    with pytest.raises(ArtefactError, match=r"SignatureDoesNotMatch|403"):
        get("oss://eas-models/sklearn/iris.joblib", tmp_path / "a",
            oss_settings("not-the-secret"), endpoint=oss.endpoint)  # fmt: skip
    assert oss.requests and all(status == 403 for _, _, status in oss.requests)
    assert list((tmp_path / "a").iterdir()) == []


@pytest.fixture(scope="module")
def configured(
    s3: str, oss: OSSServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installation]:
    """An installation whose configuration holds both stores' endpoints and credentials."""
    data_dir = tmp_path_factory.mktemp("eas-stores") / "data"
    data_dir.mkdir()
    running = start_installation(
        data_dir,
        extra_env={
            "EAS_S3_ENDPOINT_URL": s3,
            "EAS_S3_REGION": "us-east-1",
            "EAS_S3_ACCESS_KEY_ID": S3_KEYS["s3_access_key_id"],
            "EAS_S3_SECRET_ACCESS_KEY": S3_KEYS["s3_secret_access_key"],
            "EAS_OSS_ACCESS_KEY_ID": OSS_KEY_ID,
            "EAS_OSS_ACCESS_KEY_SECRET": OSS_SECRET,
        },
    )
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("code", "model_path", "endpoint", "body", "expected"),
    [
        ("sklearn", "s3://models/iris/", False, "iris_body", "iris_expected"),
        ("parameter_sever", "s3://models/sparse/v1", False, "sparse_body", "sparse_expected"),
        ("sklearn", "oss://eas-models/sklearn/iris.joblib", True, "iris_body", "iris_expected"),
        ("parameter_server", "oss://eas-models/lr/model", True, "sparse_body", "sparse_expected"),
    ],
)
def test_processor_deploys_from_an_object_store(
    configured: Installation,
    oss: OSSServer,
    files: dict[str, Any],
    unique_name: str,
    cleanup: Callable[..., str],
    code: str,
    model_path: str,
    endpoint: bool,
    body: str,
    expected: str,
) -> None:
    description: dict[str, Any] = {
        "name": unique_name,
        "processor": code,
        "model_path": model_path,
        "metadata": {"instance": 1, "cpu": 0.1, "memory": 256},
    }
    if endpoint:
        description["oss_endpoint"] = oss.endpoint
    client = configured.client
    cleanup(unique_name, client)
    client.create_service(description)
    client.wait_until_running(unique_name, timeout=90)
    token = client.describe_service(unique_name).access_token
    answer = configured.predict(unique_name, files[body], token)
    assert answer.status_code == 200, answer.text
    close(answer.json(), files[expected])


def test_an_object_store_error_is_refused_at_create_naming_the_field(
    configured: Installation, oss: OSSServer, unique_name: str, cleanup: Callable[..., str]
) -> None:
    cleanup(unique_name, configured.client)  # in case it is wrongly created
    from eas_core.errors import InvalidDescription

    with pytest.raises(InvalidDescription, match=r"model_path: .*does not exist"):
        configured.client.create_service(
            {
                "name": unique_name,
                "processor": "sklearn",
                "model_path": "oss://eas-models/no/such/model.joblib",
                "oss_endpoint": oss.endpoint,
                "metadata": {"instance": 1},
            }
        )
