"""A deploy that cannot get resources fails with the reason the instances gave, on a node
too small to hold the old and the new version side by side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from eas_pipelines.factory import build_definitions
from eas_pipelines.resources import EASResource
from tests.pipelines.conftest import flaky_document
from tests.pipelines.test_rollouts import deploy, failure_metadata
from tests.pipelines.training import flaky_model
from tests.support.installation import Installation, start_installation


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """One node of 1.5 cores: a 1-cpu instance leaves no room for a second."""
    data_dir = tmp_path_factory.mktemp("tight") / "data"
    data_dir.mkdir()
    running = start_installation(
        data_dir, extra_env={"EAS_NODE_CPU": "1.5", "EAS_NODE_MEMORY_MB": "4096"}
    )
    yield running
    running.stop()


def test_a_deploy_without_room_fails_with_the_instances_reason(
    tight: Installation,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    name = cleanup(unique_name, tight.client)
    eas = EASResource(
        endpoint=tight.controller_url,
        access_key_id=tight.client.key.id,
        access_key_secret=tight.client.key.secret,
        gateway=tight.gateway_url,
        timeout=60,
    )
    document = flaky_document(
        name, tmp_path / "s", rollout={"strategy": "all_at_once", "ready_timeout_seconds": 5}
    )
    document["service"]["metadata"].update({"cpu": 1, "memory": 256})
    defs = build_definitions([declare(document)], eas)
    assert deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v1")).success

    result = deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v2"))

    assert not result.success
    [event] = result.get_step_failure_events()
    failure = event.step_failure_data.user_failure_data
    assert failure is not None
    need = "waiting for room on node local: needs 1 cpu, 0.5 of 1.5 free"
    assert "version 2 never became ready" in (failure.description or "")
    assert need in (failure.description or "")
    metadata = failure_metadata(result)
    assert need in metadata["reason"]
    [(instance, why)] = metadata["instances_not_ready"].items()
    assert instance.startswith(f"{name}-2-")
    assert why.startswith(f"Pending: {need}")
    assert (metadata["rolled_back"], metadata["live_version"]) == (True, 1)
