"""The reconciler's after-tick hooks, with a real (empty) local backend: every hook sees what
the tick saw, and one failing hook neither stops the others nor the tick."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from eas_core.controller.backends.base import InstanceSpec
from eas_core.controller.backends.local import LocalBackend
from eas_core.controller.reconciler import DesiredService, Reconciler, Snapshot
from eas_core.errors import InvalidDescription


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    local = LocalBackend(tmp_path, host="127.0.0.1", cpu=1, memory_mb=256)
    yield local
    local.shutdown(stop_instances=True)


def unstartable(service: str, version: int, revision: int, instance_id: str) -> InstanceSpec:
    raise InvalidDescription([f"model_path: version {version} of {service} has none"])


class Failing:
    def __call__(self, snapshot: Snapshot) -> None:
        raise RuntimeError("this hook always fails")


def test_a_failing_hook_is_logged_and_the_others_still_run(
    backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Snapshot] = []
    reconciler = Reconciler(
        backend,
        lambda: [DesiredService("broken", True, 1, 0, 1)],
        unstartable,
        interval=60,
        after_tick=[Failing(), seen.append],
    )
    with caplog.at_level(logging.ERROR, logger="eas_core.controller.reconciler"):
        snapshot = reconciler.tick()
    assert seen == [snapshot]
    assert reconciler.latest() is snapshot
    assert snapshot.instances == []
    # The service the tick could not act on, and why, travels with the snapshot.
    assert snapshot.failures == {
        "broken": "cannot start instances: model_path: version 1 of broken has none"
    }
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [
        "service broken: Place failed",
        "after-tick hook Failing failed",
    ]


def test_every_tick_hands_each_hook_a_snapshot_of_its_own(backend: LocalBackend) -> None:
    seen: list[Snapshot] = []
    reconciler = Reconciler(backend, list, unstartable, interval=60, after_tick=[seen.append])
    first, second = reconciler.tick(), reconciler.tick()
    assert seen == [first, second] and first is not second
    assert first.failures == {} and second.failures == {}
