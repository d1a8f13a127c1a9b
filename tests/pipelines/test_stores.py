"""The oss model store through oss2 against a loopback server that checks oss2's V1
signatures (tests/support/object_stores.py): models put under fresh keys, listed with their
ETags, and the new-model sensor's cursor keyed on those digests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eas_pipelines.declaration import OSSStore
from eas_pipelines.sensors import new_artefacts
from eas_pipelines.stores import OSSModelStore
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
