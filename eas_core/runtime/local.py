"""`eascmd test DESC.json`: run a service in the foreground with no control plane (SPEC §4).

The same boot and runtime as a deployed instance — the packages are snapshotted into a
working directory, unpacked the same way, served with the same API — with the processor's
output on the console. Local paths are allowed, as when debugging before a deployment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from eas_core.artefacts import ArtefactCache, ArtefactStore
from eas_core.artefacts.packages import snapshot_packages
from eas_core.config import MiB, child_environment
from eas_core.errors import InvalidDescription
from eas_core.spec.instance import boot_spec, runtime_environment
from eas_core.spec.service import parse_description, unsupported_settings

MAX_ARTEFACT_BYTES = 2048 * MiB
MAX_BODY_BYTES = 64 * MiB


LOCAL_METADATA = {"instance": 1}


def run(document: dict[str, Any], *, port: int, workdir: Path) -> NoReturn:
    # PAI-EAS's local-debug descriptions (its Java example) carry no metadata: one instance.
    if "metadata" not in document:
        document = {**document, "metadata": dict(LOCAL_METADATA)}
    description = parse_description(document)
    refused = unsupported_settings(description.metadata)
    if refused:
        raise InvalidDescription(refused)
    store = ArtefactStore(workdir / "artefacts")
    # No source allow-list here: a developer debugging on their own machine reads what they
    # can read anyway; the controller's allow-list guards what others can make it read.
    cache = ArtefactCache(workdir / "cache", max_bytes=MAX_ARTEFACT_BYTES)
    artefacts = snapshot_packages(description, store, max_bytes=MAX_ARTEFACT_BYTES, cache=cache)
    boot = boot_spec(description, version=1, artefacts=artefacts)
    env = runtime_environment(
        description, version=1, token=description.token, max_body_bytes=MAX_BODY_BYTES
    )
    # A managed-like instance id makes the runtime listen where we say, not on the
    # processor's own `endpoint`. This machine is the node: its store and cache are here.
    env.update(
        EAS_INSTANCE_ID="local-test",
        EAS_HOST="0.0.0.0",
        EAS_PORT=str(port),
        EAS_INSTANCE_DIR=str(workdir),
        EAS_ARTEFACT_STORE=str(store.root),
        EAS_CACHE_DIR=str(cache.root),
        EAS_MAX_ARTEFACT_BYTES=str(MAX_ARTEFACT_BYTES),
    )
    boot_path = workdir / "boot.json"
    boot_path.write_text(boot.model_dump_json())
    print(
        f"[OK] Serving {description.name} on http://127.0.0.1:{port}/api/predict/"
        f"{description.name} (Ctrl-C to stop)",
        flush=True,
    )
    command = [sys.executable, "-m", "eas_core.runtime.boot", str(boot_path)]
    os.execve(command[0], command, child_environment(env))
