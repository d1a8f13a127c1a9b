"""OpenEAS's side: the services each workload deploys, and the lifecycle figures.

Each workload's service is deployed on a real installation (:mod:`bench.installation`,
pinned to CPU 0, so gateway, controller and instances share it) and measured twice: direct
to its instance (``ip:port`` from ``list_instances``, the path a direct-mode SDK takes) and
through the gateway (``/api/predict/<service>``). A description the installation refuses —
a built-in processor code it does not serve yet — skips the row with the installation's own
message. The ``rpc.batching`` rows deploy the same model with server-side batching on.

Lifecycle, for the echo service and for a TorchScript model on ``pytorch_cpu_1.6`` (the
heavy framework loaded; skipped where PyTorch is not installed): cold start (``create`` →
Running, median of 5) and memory (RSS of gateway, controller and instances after a deploy,
and 10 s after 10 version switches).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.catalog import Batch
from bench.installation import Installation
from eas_core.demo import ECHO
from eas_core.errors import EASError

ECHO_PROCESSOR = ECHO
RUNNING_TIMEOUT = 180.0


@dataclass
class Deployed:
    name: str
    token: str
    direct_url: str
    gateway_url: str


@dataclass
class Lifecycle:
    service: str  # what was deployed, as the results name it
    cold_start_s: list[float] = field(default_factory=list)
    rss_after_deploy: dict[str, float] = field(default_factory=dict)  # MB per part
    rss_after_switches: dict[str, float] = field(default_factory=dict)
    switches: int = 0
    switch_s: list[float] = field(default_factory=list)

    @property
    def cold_start_median(self) -> float:
        return statistics.median(self.cold_start_s) if self.cold_start_s else float("nan")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def description(
    workload: str, name: str, model: Path | None, batch: Batch | None
) -> dict[str, Any]:
    """The service each workload deploys: the echo processor of eas_core/demo/echo, and built-in
    processors for the models (``sklearn`` for the heart model, ``onnx`` for the MLP)."""
    metadata: dict[str, Any] = {"instance": 1, "cpu": 1, "memory": 1024}
    if workload == "echo":
        return {
            "name": name,
            "processor_type": "python",
            "processor_path": str(ECHO_PROCESSOR),
            "processor_entry": "app.py",
            "metadata": {**metadata, "memory": 256},
        }
    if batch is not None:
        metadata.update(
            {
                "rpc.batching": True,
                "rpc.max_batch_size": batch.size,
                "rpc.max_batch_timeout": int(batch.timeout_ms),
            }
        )
    return {
        "name": name,
        "processor": "sklearn" if workload == "heart" else "onnx",
        "model_path": str(model),
        "metadata": metadata,
    }


def deploy(installation: Installation, document: dict[str, Any]) -> Deployed:
    """Create the service and wait until it runs; EASError (the installation's message) when
    it refuses the description or the service fails."""
    client = installation.client
    name = document["name"]
    client.create_service(document)
    client.wait_until_running(name, timeout=RUNNING_TIMEOUT, poll=0.2)
    token = client.describe_service(name).access_token
    ready = [w for w in client.list_instances(name) if w.ready]
    if not ready:
        raise EASError(f"service {name!r} is running but lists no ready instance")
    instance = f"http://{ready[0].ip}:{ready[0].port}"
    if ready[0].ip not in ("127.0.0.1", "localhost"):
        raise EASError(f"the instance listens on {instance}, not on loopback")
    return Deployed(
        name=name,
        token=token,
        direct_url=f"{instance}/api/predict/{name}",
        gateway_url=f"{installation.gateway_url}/api/predict/{name}",
    )


def remove(installation: Installation, name: str) -> None:
    try:
        installation.client.delete_service(name)
        installation.client.wait_until_deleted(name, timeout=120, poll=0.2)
    except EASError as exc:
        _say(f"could not delete {name}: {exc}")


def roots(installation: Installation) -> list[psutil.Process]:
    """The installation's processes whose CPU a row counts: gateway and controller, with
    the instances under the controller."""
    return [
        psutil.Process(installation.pid("gateway")),
        psutil.Process(installation.pid("controller")),
    ]


def rss_mb(installation: Installation) -> dict[str, float]:
    result = {}
    for part, processes in installation.parts().items():
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        result[part] = total / 2**20
    result["total"] = sum(result.values())
    return result


def torch_description(name: str, model: Path) -> dict[str, Any]:
    """A TorchScript model (examples/pytorch/make_model.py) on the built-in PyTorch processor."""
    return {
        "name": name,
        "processor": "pytorch_cpu_1.6",
        "model_path": str(model),
        "metadata": {"instance": 1, "cpu": 1, "memory": 2000},
    }


def lifecycle(
    installation: Installation,
    service: str,
    describe: Callable[[str], dict[str, Any]],
    *,
    cold_starts: int,
    switches: int,
) -> Lifecycle:
    """Cold starts of the service ``describe(name)`` gives, then memory after a deploy and
    after version switches."""
    client = installation.client
    figures = Lifecycle(service)
    for index in range(cold_starts):
        name = f"bench_cold_{index}"
        started = time.monotonic()
        client.create_service(describe(name))
        client.wait_until_running(name, timeout=RUNNING_TIMEOUT, poll=0.02)
        figures.cold_start_s.append(time.monotonic() - started)
        _say(f"{service}: cold start {index + 1}/{cold_starts}: {figures.cold_start_s[-1]:.2f} s")
        remove(installation, name)
    name = "bench_switch"
    deploy(installation, describe(name))
    time.sleep(2)  # the first route-table push and health probes settle
    figures.rss_after_deploy = rss_mb(installation)
    # A second version: a changed model_config is a new version of the same processor.
    client.modify_service(name, {"model_config": "version-2"})
    client.wait_until_running(name, timeout=RUNNING_TIMEOUT, poll=0.1, version=2)
    for index in range(switches):
        target = 1 if index % 2 == 0 else 2
        started = time.monotonic()
        client.switch_version(name, target)
        client.wait_until_running(name, timeout=RUNNING_TIMEOUT, poll=0.1, version=target)
        figures.switch_s.append(time.monotonic() - started)
        took = figures.switch_s[-1]
        _say(f"{service}: version switch {index + 1}/{switches} → {target}: {took:.2f} s")
    figures.switches = switches
    time.sleep(10)
    figures.rss_after_switches = rss_mb(installation)
    remove(installation, name)
    return figures
