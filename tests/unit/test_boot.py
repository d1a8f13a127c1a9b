"""An instance boots from artefact URIs: the boot spec names packages by URI and digest only,
and the node's own settings say where its store and cache are — so a node whose store is
another directory (another machine) boots the same spec."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from eas_core.artefacts import ArtefactCache, ArtefactStore
from eas_core.artefacts.packages import snapshot_packages
from eas_core.config import RuntimeSettings
from eas_core.errors import EASError
from eas_core.runtime.boot import prepare
from eas_core.spec.instance import BootSpec, boot_spec
from eas_core.spec.service import parse_description
from tests.support.installation import PROCESSORS, free_port, wait_for

MAX_BYTES = 64 * 1024 * 1024


def controller_spec(tmp_path: Path) -> BootSpec:
    """What the controller writes: the probe processor and a model, snapshotted into its store."""
    model = tmp_path / "model.txt"
    model.write_text("the model")
    description = parse_description(
        {
            "name": "booted",
            "processor_type": "python",
            "processor_path": str(PROCESSORS / "probe"),
            "processor_entry": "app.py",
            "model_path": str(model),
            "metadata": {"instance": 1},
        }
    )
    store = ArtefactStore(tmp_path / "controller" / "artefacts")
    cache = ArtefactCache(tmp_path / "controller" / "cache", max_bytes=MAX_BYTES)
    artefacts = snapshot_packages(description, store, max_bytes=MAX_BYTES, cache=cache)
    return boot_spec(description, version=3, artefacts=artefacts)


def test_the_boot_spec_names_artefacts_by_uri_and_no_controller_path(tmp_path: Path) -> None:
    spec = controller_spec(tmp_path)
    document = spec.model_dump(mode="json")
    assert str(tmp_path) not in json.dumps(document)
    assert set(document) == {
        "service",
        "version",
        "model",
        "model_entry",
        "processor_code",
        "processor_type",
        "processor",
        "processor_entry",
        "processor_mainclass",
    }
    for artefact in (document["model"], document["processor"]):
        assert set(artefact) == {"uri", "digest", "filename"}
        assert artefact["uri"].startswith("eas://artefacts/")


def test_a_node_boots_from_its_own_store_and_cache(tmp_path: Path) -> None:
    spec = controller_spec(tmp_path)
    assert spec.model is not None and spec.processor is not None
    # Another node: its own store holds the same blobs (same digest, same URI).
    controller = ArtefactStore(tmp_path / "controller" / "artefacts")
    node_store = ArtefactStore(tmp_path / "node" / "artefacts")
    for artefact in (spec.model, spec.processor):
        copied = node_store.put_file(controller.path_of(artefact.uri), artefact.filename)
        assert copied.uri == artefact.uri
    settings = RuntimeSettings(
        artefact_store=node_store.root, cache_dir=tmp_path / "node" / "cache"
    )
    command, env, cwd = prepare(spec, settings)
    node_cache = (tmp_path / "node" / "cache").resolve()
    assert command[0] == sys.executable
    assert Path(command[1]).resolve().is_relative_to(node_cache)
    assert Path(command[1]).name == "app.py"
    assert cwd is not None and cwd.resolve().is_relative_to(node_cache)
    assert Path(env["EAS_MODEL_ENTRY"]).read_text() == "the model"
    assert Path(env["EAS_MODEL_ENTRY"]).resolve().is_relative_to(node_cache)


def test_a_node_without_a_store_says_which_setting_is_missing(tmp_path: Path) -> None:
    spec = controller_spec(tmp_path)
    with pytest.raises(EASError, match=r"^EAS_ARTEFACT_STORE: not set, so this node cannot fetch "):
        prepare(spec, RuntimeSettings(artefact_store=None, cache_dir=tmp_path / "cache"))
    with pytest.raises(EASError, match=r"^EAS_CACHE_DIR: not set"):
        prepare(spec, RuntimeSettings(artefact_store=tmp_path / "store", cache_dir=None))


def test_a_node_whose_store_lacks_the_artefact_names_its_uri(tmp_path: Path) -> None:
    spec = controller_spec(tmp_path)
    assert spec.model is not None
    settings = RuntimeSettings(artefact_store=tmp_path / "empty", cache_dir=tmp_path / "cache")
    with pytest.raises(EASError, match=f"^no artefact {re.escape(spec.model.uri)}$"):
        prepare(spec, settings)


def test_a_boot_spec_written_with_controller_paths_still_boots(tmp_path: Path) -> None:
    """Instances placed by an earlier release keep their boot.json across an upgrade."""
    spec = controller_spec(tmp_path)
    older = {
        **spec.model_dump(mode="json"),
        "artefact_store": "/nowhere/artefacts",
        "cache_dir": "/nowhere/cache",
        "max_artefact_bytes": 1,
    }
    assert BootSpec.model_validate(older) == spec


def test_a_builtin_processor_goes_on_in_the_boot_process(tmp_path: Path) -> None:
    """No second interpreter: the boot process itself serves (its command line still names
    the boot module), with the model fetched from the node's store."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "identity.onnx"))
    description = parse_description(
        {
            "name": "booted",
            "processor": "onnx",
            "model_path": str(tmp_path / "identity.onnx"),
            "metadata": {"instance": 1},
        }
    )
    store = ArtefactStore(tmp_path / "artefacts")
    cache = ArtefactCache(tmp_path / "cache", max_bytes=MAX_BYTES)
    artefacts = snapshot_packages(description, store, max_bytes=MAX_BYTES, cache=cache)
    spec_path = tmp_path / "boot.json"
    spec_path.write_text(boot_spec(description, version=1, artefacts=artefacts).model_dump_json())
    port = free_port()
    env = {
        **os.environ,
        "EAS_ARTEFACT_STORE": str(store.root),
        "EAS_CACHE_DIR": str(tmp_path / "node-cache"),
        "EAS_PROCESSOR": "onnx",
        "EAS_SERVICE_NAME": "booted",
        "EAS_HOST": "127.0.0.1",
        "EAS_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "eas_core.runtime.boot", str(spec_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/api/builtin/ready"), 60, 0.05, "the instance")
        answer = httpx.post(f"{base}/api/predict/booted", json={"inputs": {"x": [[1.5, -2.0]]}})
        assert answer.json() == {"outputs": {"y": [[1.5, -2.0]]}}
        assert b"eas_core.runtime.boot" in Path(f"/proc/{process.pid}/cmdline").read_bytes()
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
