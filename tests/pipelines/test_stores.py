"""The oss model store through oss2 against a loopback server that checks oss2's V1
signatures (tests/support/object_stores.py): models put under fresh keys, listed with their
ETags, the new-model sensor's cursor keyed on those digests, and a whole pipeline run — the
trained model put into OSS by the pipeline, fetched from there by a real installation given
the same credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import dagster as dg
import pytest

from eas_pipelines.declaration import OSSStore, parse_declaration
from eas_pipelines.factory import build_definitions
from eas_pipelines.resources import EASResource
from eas_pipelines.sensors import new_artefacts
from eas_pipelines.stores import OSSModelStore
from tests.pipelines.conftest import flaky_document
from tests.support.installation import delete_services, start_installation
from tests.support.object_stores import OSSServer, oss_server

pytest.importorskip("oss2", reason="the oss extra is not installed")

KEY_ID, SECRET = "LTAIpipelinekey", "pipeline-oss-secret"


@pytest.fixture
def oss(monkeypatch: pytest.MonkeyPatch) -> Iterator[OSSServer]:
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SECRET)
    with oss_server(KEY_ID, SECRET) as server:
        server.buckets["models"] = {}
        yield server


def store(server: OSSServer) -> OSSModelStore:
    return OSSModelStore(
        OSSStore(kind="oss", endpoint=server.endpoint, bucket="models", prefix="heart")
    )


def test_oss_models_are_put_signed_and_new_only_for_new_bytes(
    oss: OSSServer, tmp_path: Path
) -> None:
    model = tmp_path / "model.pmml"
    model.write_bytes(b"<PMML>first</PMML>")
    models = store(oss)

    first = models.put(model, "svc")
    assert first.uri.startswith("oss://models/heart/") and first.uri.endswith("/svc.pmml")
    assert oss.buckets["models"][first.key] == b"<PMML>first</PMML>"
    listed = models.list("")
    assert [(a.uri, a.digest) for a in listed] == [(first.uri, first.digest)]
    fresh, cursor = new_artefacts(listed, None)
    assert fresh == listed

    again = models.put(model, "svc")  # identical bytes, uploaded again under a new key
    assert again.uri != first.uri and again.digest == first.digest
    assert new_artefacts(models.list(""), cursor)[0] == []

    model.write_bytes(b"<PMML>second</PMML>")
    second = models.put(model, "svc")
    fresh, cursor = new_artefacts(models.list(""), cursor)
    assert [a.uri for a in fresh] == [second.uri]
    assert new_artefacts(models.list(""), cursor)[0] == []
    # Every request carried a signature the server checked.
    assert oss.requests and all(status == 200 for _, _, status in oss.requests), oss.requests


def test_an_oss_store_with_a_wrong_secret_names_the_refusal(
    oss: OSSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oss2  # type: ignore[import-not-found]

    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "not-the-secret")
    model = tmp_path / "model.pmml"
    model.write_bytes(b"<PMML/>")
    with pytest.raises(oss2.exceptions.ServerError, match="SignatureDoesNotMatch"):
        store(oss).put(model, "svc")
    assert oss.buckets["models"] == {}


def test_a_pipeline_run_trains_into_oss_and_the_installation_serves_from_there(
    oss: OSSServer,
    tmp_path: Path,
    dagster_instance: dg.DagsterInstance,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = tmp_path_factory.mktemp("eas-oss") / "data"
    data_dir.mkdir()
    # The installation reads oss:// model paths with the same key the pipeline writes with.
    keys = {"EAS_OSS_ACCESS_KEY_ID": KEY_ID, "EAS_OSS_ACCESS_KEY_SECRET": SECRET}
    installation = start_installation(data_dir, extra_env=keys)
    name = "oss_pipeline"
    try:
        eas = EASResource(
            endpoint=installation.controller_url,
            access_key_id=installation.client.key.id,
            access_key_secret=installation.client.key.secret,
            gateway=installation.gateway_url,
            timeout=60,
        )
        store = {"kind": "oss", "endpoint": oss.endpoint, "bucket": "models", "prefix": "pp"}
        document = flaky_document(name, tmp_path)
        document["store"] = store
        declaration = parse_declaration(document, base_dir=tmp_path)
        job = build_definitions([declaration], eas).resolve_job_def(f"{name}_retrain_and_deploy")

        result = job.execute_in_process(instance=dagster_instance, raise_on_error=False)

        assert result.success
        served = installation.client.describe_service(name)
        uri = served.service_config["model_path"]
        assert uri.startswith("oss://models/pp/") and uri.endswith(f"/{name}.json")
        assert served.service_config["oss_endpoint"] == oss.endpoint
        key = uri.removeprefix("oss://models/")
        assert b'"label": "trained"' in oss.buckets["models"][key]
        verbs = {(verb, status) for verb, path, status in oss.requests if key in unquote(path)}
        assert ("PUT", 200) in verbs and ("GET", 200) in verbs, oss.requests
        answer = installation.predict(name, b"ping", token=served.access_token)
        assert (answer.status_code, answer.content) == (200, b"pong")
    finally:
        delete_services(installation.client, name)
        installation.stop()
