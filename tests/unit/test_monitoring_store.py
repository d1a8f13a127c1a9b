"""The monitoring store against a real SQLite file and a real PostgreSQL database: tiers,
pruning, and what goes with a deleted service; the collector's downsampling into the coarse
tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from eas_core.cli.monitoring import render, sparkline
from eas_core.config import ControllerSettings
from eas_core.controller.backends.base import InstanceStatus, ObservedInstance
from eas_core.controller.cleanup import Cleanup
from eas_core.controller.metrics.collector import Collector
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import (
    COARSE,
    FINE,
    Point,
    Repository,
    ScalingStore,
    SeriesStore,
    ServiceState,
)
from eas_core.controller.store.scaling import EVENTS_KEPT
from eas_core.spec.monitoring import ServiceMetrics

Stores = tuple[Repository, SeriesStore, ScalingStore]


@pytest.fixture
def stores(store_url: str) -> Iterator[Stores]:
    """On SQLite and PostgreSQL alike (the ``store_url`` fixture, tests/unit/conftest.py)."""
    repo = Repository(store_url)
    yield repo, SeriesStore(repo.engine), ScalingStore(repo.engine)
    repo.close()


def test_points_are_read_by_service_tier_time_and_instance(stores: Stores) -> None:
    _, series, _ = stores
    series.write(
        FINE,
        [
            Point("a", "", "rps", 10, 1),
            Point("a", "a-1", "rps", 10, 1),
            Point("a", "", "queue", 20, 3),
            Point("b", "", "rps", 20, 9),
        ],
    )
    series.write(COARSE, [Point("a", "", "rps", 60, 2)])
    assert [p.value for p in series.read("a", FINE, 0)] == [1, 1, 3]
    assert [p.metric for p in series.read("a", FINE, 15)] == ["queue"]
    assert [p.instance for p in series.read("a", FINE, 0, instance="a-1")] == ["a-1"]
    assert [p.value for p in series.read("a", FINE, 0, metrics=["rps"], instance="")] == [1]
    assert [p.time for p in series.read("a", COARSE, 0)] == [60]


def test_pruning_drops_only_the_old_points_of_one_tier(stores: Stores) -> None:
    _, series, _ = stores
    series.write(FINE, [Point("a", "", "rps", t, 1) for t in range(10)])
    series.write(COARSE, [Point("a", "", "rps", 1, 1)])
    assert series.prune(FINE, 5) == 5
    assert [p.time for p in series.read("a", FINE, 0)] == [5, 6, 7, 8, 9]
    assert len(series.read("a", COARSE, 0)) == 1


def test_the_collector_averages_each_coarse_step_and_prunes(stores: Stores, tmp_path: Path) -> None:
    _, series, _ = stores
    settings = ControllerSettings(
        data_dir=tmp_path, metrics_coarse_step=60, metrics_fine_seconds=100
    )
    collector = Collector(settings, series)
    try:
        series.write(FINE, [Point("a", "", "rps", 0, 1)])  # older than the fine retention
        collector._downsample(120, [Point("a", "", "rps", 120, 2)])
        collector._downsample(150, [Point("a", "", "rps", 150, 4)])
        assert series.read("a", COARSE, 0) == []  # the step is still filling
        collector._downsample(185, [Point("a", "", "rps", 185, 10)])
        [averaged] = series.read("a", COARSE, 0)
        assert (averaged.time, averaged.value) == (180, 3)
        assert series.read("a", FINE, 0) == []  # pruned once the step closed
    finally:
        collector.stop()


def test_events_are_kept_per_service_up_to_a_bound(stores: Stores) -> None:
    _, _, scaling = stores
    for n in range(EVENTS_KEPT + 5):
        scaling.add_event("a", "Autoscale", f"event {n}")
    scaling.add_event("b", "Alert", "other")
    kept = scaling.events("a", limit=EVENTS_KEPT + 10)
    assert len(kept) == EVENTS_KEPT
    assert kept[0].message == "event 5" and kept[-1].message == f"event {EVENTS_KEPT + 4}"
    assert [e.message for e in scaling.events("b")] == ["other"]


# Repository.delete_service deletes a service's versions and the service in one flush, and
# SQLite's own cascade may get to the versions first: SQLAlchemy warns, nothing is wrong.
@pytest.mark.filterwarnings("ignore:DELETE statement on table 'versions':sqlalchemy.exc.SAWarning")
def test_a_deleted_service_takes_its_autoscaling_rule_with_it(stores: Stores) -> None:
    repo, _, scaling = stores
    repo.create_service(
        name="a", token=None, instance_count=1, document={"metadata": {"instance": 1}}, artefacts={}
    )
    scaling.set_rule("a", min_instances=1, max_instances=3, metric="qps", target=5, at=0)
    assert scaling.rule("a") is not None
    repo.delete_service("a")
    assert scaling.rules() == []


def observed(service: str) -> ObservedInstance:
    return ObservedInstance(
        id=f"{service}-1",
        service=service,
        version=1,
        revision=0,
        status=InstanceStatus.TERMINATING,
        host="127.0.0.1",
        port=1,
        node="local",
    )


def test_the_series_of_a_deleted_service_go_once_it_is_removed(stores: Stores) -> None:
    repo, series, _ = stores
    for name in ("gone", "kept"):
        repo.create_service(
            name=name, token=None, instance_count=1, document={"metadata": {}}, artefacts={}
        )
        series.write(FINE, [Point(name, "", "rps", 10, 1), Point(name, f"{name}-1", "rps", 10, 2)])
        series.write(COARSE, [Point(name, "", "rps", 60, 1)])
    repo.update_service("gone", state=ServiceState.DELETING)
    cleanup = Cleanup(repo, series)
    # Still draining: an instance of it is observed, so it and its series stay.
    cleanup(Snapshot(instances=[observed("gone")]))
    assert len(series.read("gone", FINE, 0)) == 2
    cleanup(Snapshot())
    assert repo.find_service("gone") is None
    assert series.read("gone", FINE, 0) == []
    assert series.read("gone", COARSE, 0) == []
    assert len(series.read("kept", FINE, 0)) == 2


def test_the_live_view_shows_the_latest_value_per_instance() -> None:
    data = ServiceMetrics.model_validate(
        {
            "ServiceName": "a",
            "Step": 5,
            "Since": 900,
            "Series": [
                {"Metric": "rps", "Instance": None, "Points": [[1, 2.0], [2, 40.0]]},
                {"Metric": "rps", "Instance": "a-1", "Points": [[2, 40.0]]},
            ],
        }
    )
    console = Console(width=250, record=True)
    console.print(render(data))
    text = console.export_text()
    assert "service" in text and "a-1" in text and "40.00" in text
    assert sparkline([0, 5, 10]) == "▁▄█"
