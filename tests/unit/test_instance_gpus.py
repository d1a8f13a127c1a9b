"""GPU per instance in `eascmd w` and the instances API: the indices it holds (its
CUDA_VISIBLE_DEVICES) and, where the collector measured them, its GPU memory and
utilisation; an instance on no GPU shows empty and zero, without errors."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from eas_core.config import ControllerSettings
from eas_core.controller.backends import gpus
from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.metrics.collector import Collector
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import Repository, SeriesStore
from eas_core.controller.views import ServiceViews
from eas_core.spec.status import InstanceStatus

DOCUMENT = {"name": "svc", "processor": "pmml", "metadata": {"instance": 2}}


def observed(instance_id: str, gpus: tuple[int, ...]) -> ObservedInstance:
    return ObservedInstance(
        id=instance_id,
        service="svc",
        version=1,
        revision=0,
        status=InstanceStatus.RUNNING,
        host="127.0.0.1",
        port=1,
        node="local",
        gpus=gpus,
    )


class Views(ServiceViews):
    def __init__(
        self,
        repo: Repository,
        instances: list[ObservedInstance],
        use: Mapping[str, Mapping[str, float]],
        data_dir: Path,
    ) -> None:
        self.settings = ControllerSettings(data_dir=data_dir)
        self.repo = repo
        self.observed = lambda: instances
        self.failures = dict
        self.gpu_use = lambda: use


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    repo = Repository(f"sqlite:///{tmp_path / 'eas.db'}")
    repo.create_service(name="svc", token=None, instance_count=2, document=DOCUMENT, artefacts={})
    yield repo
    repo.close()


def test_w_shows_the_gpus_an_instance_holds_and_what_it_uses_of_them(
    repo: Repository, tmp_path: Path
) -> None:
    instances = [observed("svc-a", (0, 2)), observed("svc-b", ())]
    use = {"svc-a": {"gpu_memory_mb": 1500.0, "gpu_util": 42.0}}
    on_gpu, on_cpu = Views(repo, instances, use, tmp_path).workers("svc")
    assert (on_gpu.gpus, on_gpu.gpu_memory_mb, on_gpu.gpu_util) == ("0,2", 1500.0, 42.0)
    assert (on_cpu.gpus, on_cpu.gpu_memory_mb, on_cpu.gpu_util) == ("", 0.0, 0.0)
    assert on_gpu.wire()["GPUs"] == "0,2" and on_cpu.wire()["GpuUtil"] == 0.0


def test_the_collector_keeps_each_instances_gpu_values_of_its_last_round(tmp_path: Path) -> None:
    """An instance whose processes hold GPU memory (NVML's answer, given here as the
    collector's ``gpu_usage``) has its values kept for `w`; one on no GPU has none."""

    class Empty(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # an instance's metrics endpoint with no counters yet
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Empty)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    repo = Repository(f"sqlite:///{tmp_path / 'eas.db'}")
    me = os.getpid()

    def usage(pids: set[int]) -> dict[int, list[gpus.GpuUse]]:
        return {me: [gpus.GpuUse(index=1, memory_mb=700, utilisation=35)]} if me in pids else {}

    collector = Collector(
        ControllerSettings(data_dir=tmp_path), SeriesStore(repo.engine), gpu_usage=usage
    )
    try:
        on_gpu = replace(observed("svc-a", (1,)), port=port, pid=me)
        on_cpu = replace(observed("svc-b", ()), port=port, pid=None)
        collector(Snapshot(instances=[on_gpu, on_cpu]))
        collector.collect()
        assert collector.instance_gpu == {"svc-a": {"gpu_memory_mb": 700.0, "gpu_util": 35.0}}
        collector(Snapshot(instances=[on_cpu]))
        collector.collect()
        assert collector.instance_gpu == {}  # a gone instance's values go with it
    finally:
        collector.stop()
        server.shutdown()
        server.server_close()
        repo.close()
