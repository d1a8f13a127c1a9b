"""GPU series of an instance: the memory its process tree holds and the busiest device it
runs on, from NVML's per-process answer — and nothing at all on a machine without GPUs."""

from __future__ import annotations

import os
from pathlib import Path

from eas_core.config import ControllerSettings
from eas_core.controller.backends import gpus
from eas_core.controller.metrics.collector import (
    Collector,
    Sample,
    children_by_parent,
    gpu_values,
    process_tree,
)
from eas_core.controller.metrics.rates import Totals
from eas_core.controller.store import SeriesStore
from eas_core.controller.store.repository import Repository


def sample(*pids: int) -> Sample:
    return Sample(0.0, Totals(), 1.0, 10.0, pids)


def test_an_instance_sums_its_processes_memory_and_takes_the_busiest_device() -> None:
    use = {
        10: [gpus.GpuUse(index=0, memory_mb=700, utilisation=35)],
        11: [gpus.GpuUse(index=1, memory_mb=300, utilisation=80)],
        99: [gpus.GpuUse(index=0, memory_mb=5000, utilisation=35)],  # another instance
    }
    assert gpu_values(sample(10, 11), use) == {"gpu_memory_mb": 1000.0, "gpu_util": 80.0}
    assert gpu_values(sample(12), use) == {}  # on no GPU: no GPU series at all


def test_the_process_tree_holds_the_worker_processes() -> None:
    children = {1: [2, 3], 3: [4]}
    assert sorted(process_tree(1, children)) == [1, 2, 3, 4]
    assert process_tree(None, children) == []
    assert os.getpid() in process_tree(os.getppid(), children_by_parent())


def test_without_gpus_the_collector_never_asks_nvml(tmp_path: Path) -> None:
    repo = Repository(f"sqlite:///{tmp_path / 'eas.db'}")
    collector = Collector(ControllerSettings(data_dir=tmp_path), SeriesStore(repo.engine))
    try:
        assert (collector.gpu_usage is None) == (gpus.detect() == [])
    finally:
        collector.stop()
        repo.close()
