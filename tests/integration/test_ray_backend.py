"""An installation on a Ray cluster: `eascmd server --backend ray --ray-address ADDR` over two
Ray nodes of the public group on this machine (standing for two machines), a service's
instances spread over both, called through the gateway and direct."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.installation import Installation, python_service, start_installation, wait_for
from tests.support.raycluster import RAY_ENV, RayCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    os.environ.update(RAY_ENV)
    running = RayCluster()
    try:
        running.start_node("public", cpu=1, memory_mb=1024)
        running.start_node("public", cpu=1, memory_mb=1024)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def on_ray(cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir: Path = tmp_path_factory.mktemp("ray") / "data"
    data_dir.mkdir()
    running = start_installation(
        data_dir, extra_args=["--backend", "ray", "--ray-address", cluster.address]
    )
    try:
        yield running
    finally:
        running.stop()


def test_instances_spread_over_the_nodes_and_answer(on_ray: Installation) -> None:
    [public] = on_ray.eascmd_json("resource", "ls")
    assert (public["ResourceName"], public["InstanceCount"], public["CpuCount"]) == (
        "public",
        2,
        2,
    )
    client = on_ray.client
    client.create_service(python_service("on_ray", instances=2))

    def both_ready() -> list[object] | None:
        instances = client.list_instances("on_ray")
        return instances if len(instances) == 2 and all(i.ready for i in instances) else None

    instances = wait_for(both_ready, timeout=240, interval=1, what="two ready instances on Ray")
    nodes = {n["name"] for n in public["Nodes"]}
    assert {i.node for i in instances} == nodes, "SPREAD puts one instance on each node"
    token = client.describe_service("on_ray").access_token
    for n in range(20):
        answer = on_ray.predict("on_ray", f"echo:{n}".encode(), token=token)
        assert (answer.status_code, answer.content) == (200, str(n).encode())
    for instance in instances:
        direct = httpx.post(
            f"http://{instance.ip}:{instance.port}/api/predict/on_ray",
            content=b"echo:direct",
            headers={"Authorization": token},
            timeout=30,
        )
        assert (direct.status_code, direct.content) == (200, b"direct")
    [public] = on_ray.eascmd_json("resource", "ls")
    assert sum(n["used_cpu"] for n in public["Nodes"]) == pytest.approx(0.2)
    client.delete_service("on_ray")
    wait_for(
        lambda: "on_ray" not in {s.service_name for s in client.list_services()},
        timeout=120,
        what="the service and its instances to go",
    )
