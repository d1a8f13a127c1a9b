"""GPU detection through NVML, on whatever machine the tests run: a machine without NVIDIA
GPUs (or without a driver) has 0 GPUs, and every answer says so instead of failing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from eas_core.config import ControllerSettings
from eas_core.controller.backends import gpus
from eas_core.controller.backends.local import LocalBackend

HAS_DRIVER = shutil.which("nvidia-smi") is not None


@pytest.mark.skipif(HAS_DRIVER, reason="this machine has an NVIDIA driver")
def test_a_machine_without_gpus_detects_none() -> None:
    assert gpus.detect() == []
    assert gpus.usage({os.getpid()}) == {}
    assert gpus.labels([]) == {}


def test_the_local_node_reports_what_nvml_finds(tmp_path: Path) -> None:
    found = gpus.detect()
    backend = LocalBackend.from_settings(
        ControllerSettings(data_dir=tmp_path, node_cpu=2, node_memory_mb=1024)
    )
    try:
        [node] = backend.nodes()
        assert node.gpu == len(found)
        assert node.used_gpu == 0
        assert node.labels == gpus.labels(found)
    finally:
        backend.shutdown(stop_instances=True)


def test_a_declared_gpu_count_wins_over_detection(tmp_path: Path) -> None:
    backend = LocalBackend.from_settings(
        ControllerSettings(data_dir=tmp_path, node_cpu=2, node_memory_mb=1024, node_gpu=3)
    )
    try:
        assert [n.gpu for n in backend.nodes()] == [3]
    finally:
        backend.shutdown(stop_instances=True)


def test_labels_name_the_model_and_memory() -> None:
    found = [gpus.Gpu(0, "NVIDIA H100", 81559), gpus.Gpu(1, "NVIDIA H100", 81559)]
    assert gpus.labels(found) == {"gpu_model": "NVIDIA H100", "gpu_memory_mb": "81559"}
