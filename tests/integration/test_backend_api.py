"""What a user sees of the backend through eascmd: the resource groups its nodes are in, the
logs of its instances, and the choice of backend when the installation starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eas_core.errors import InvalidDescription
from tests.support.installation import REPO, Installation, free_port, python_service


def test_resource_groups_are_the_groups_of_the_backends_nodes(installation: Installation) -> None:
    [public] = installation.eascmd_json("resource", "ls")
    assert public["ResourceName"] == "public"
    assert (public["InstanceCount"], public["CpuCount"], public["GpuCount"]) == (1, 64, 0)
    [node] = public["Nodes"]
    assert (node["name"], node["group"], node["cpu"], node["memory_mb"]) == (
        "local",
        "public",
        64,
        262144,
    )
    [listed] = installation.eascmd_json("resource", "li", "public")
    assert (listed["name"], listed["group"]) == ("local", "public")


def test_a_resource_group_no_node_is_in_is_refused_naming_those_there_are(
    installation: Installation, unique_name: str
) -> None:
    document = python_service(unique_name, metadata={"resource": "gpu_pool"})
    with pytest.raises(InvalidDescription) as refused:
        installation.client.create_service(document)
    assert "metadata.resource: no resource group 'gpu_pool' (have: public)" in refused.value.message
    assert unique_name not in {s.service_name for s in installation.client.list_services()}


def test_logs_show_what_each_instance_wrote(installation: Installation, unique_name: str) -> None:
    installation.client.create_service(python_service(unique_name))
    try:
        installation.client.wait_until_running(unique_name, timeout=120)
        [instance] = [w["InstanceName"] for w in installation.eascmd_json("w", unique_name)]
        logs = installation.eascmd_json("logs", unique_name)
        assert logs["ServiceName"] == unique_name
        assert "[INFO] Service start successfully" in logs["Logs"][instance]
        last = installation.eascmd("logs", unique_name, "--tail", "1").stdout.splitlines()
        assert last == [f"[{instance}] {logs['Logs'][instance][-1]}"]
    finally:
        installation.client.delete_service(unique_name)


def test_an_unknown_backend_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
    server = [
        sys.executable,
        "-m",
        "eas_core.cli",
        "server",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(free_port()),
        "--gateway-port",
        str(free_port()),
    ]

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*server, *args],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )

    by_setting = run(EAS_BACKEND="kubernetes")
    assert by_setting.returncode == 1, by_setting
    assert "backend: no backend named 'kubernetes' (have: local, ray)" in by_setting.stderr
    by_flag = run("--backend", "kubernetes")
    assert by_flag.returncode == 2, by_flag
    assert (
        "Invalid value for '--backend': 'kubernetes' is not one of 'local', 'ray'."
        in by_flag.stderr
    )
    assert not (tmp_path / "data").exists()
