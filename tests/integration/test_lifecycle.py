"""The CLI over a real installation: create, ls, desc, w, modify (scale, settings), stop,
start, delete, and failure handling (instance crashes, controller restarts)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from eas_core.sdk import InstanceStatus, ServiceStatus
from tests.support.installation import Installation, python_service, wait_for


def write(path: Path, document: dict[str, object]) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_create_prints_endpoint_token_and_progress(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    desc = write(workdir / "service.json", python_service(unique_name))
    result = installation.eascmd("create", str(desc))
    assert f"{installation.gateway_url}/api/predict/{unique_name}" in result.stdout
    token = installation.client.describe_service(unique_name).access_token
    assert token in result.stdout
    assert "[OK] Service is running" in result.stderr
    assert installation.predict(unique_name, b"echo:hi", token).content == b"hi"

    listed = installation.eascmd_json("ls")
    row = next(r for r in listed if r["ServiceName"] == unique_name)
    assert row["Status"] == "Running" and row["RunningInstance"] == 1
    table = installation.eascmd("ls").stdout
    assert unique_name in table

    info = installation.eascmd_json("desc", unique_name)
    for key in (
        "Status",
        "ServiceName",
        "CreateTime",
        "UpdateTime",
        "AccessToken",
        "TotalInstance",
        "RunningInstance",
        "PendingInstance",
        "CPU",
        "GPU",
        "Memory",
        "Weight",
        "LatestVersion",
        "CurrentVersion",
        "Message",
        "IntranetEndpoint",
        "ServiceConfig",
    ):
        assert key in info, key
    assert info["Message"] == "Service start successfully"
    assert info["ServiceConfig"]["processor_entry"] == "app.py"

    workers = installation.eascmd_json("w", unique_name)
    assert len(workers) == 1
    assert workers[0]["Status"] == "Running" and workers[0]["Ready"] is True
    assert workers[0]["Version"] == 1
    assert unique_name in installation.eascmd("showworkers", unique_name).stdout

    # Delete asks first; "n" keeps the service.
    refused = installation.eascmd("delete", unique_name, input="n\n", check=False)
    assert refused.returncode != 0
    assert installation.predict(unique_name, b"echo:still", token).status_code == 200
    installation.eascmd("delete", unique_name, input="y\n")
    assert installation.predict(unique_name, b"echo:x", token).status_code == 404
    gone = installation.eascmd("desc", unique_name, check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr


def test_scale_up_and_down_keeps_running_instances(
    installation: Installation, unique_name: str
) -> None:
    installation.client.create_service(python_service(unique_name, instances=1))
    installation.client.wait_until_running(unique_name, timeout=60)
    first = {w.instance_name for w in installation.client.list_instances(unique_name)}

    installation.eascmd("modify", unique_name, "-Dmetadata.instance=3", "--wait")
    after_up = {
        w.instance_name
        for w in installation.client.list_instances(unique_name)
        if w.status == InstanceStatus.RUNNING
    }
    assert len(after_up) == 3 and first <= after_up
    assert installation.client.describe_service(unique_name).current_version == 1

    installation.eascmd("modify", unique_name, "-Dmetadata.instance=2", "--wait")
    wait_for(lambda: len(installation.client.list_instances(unique_name)) == 2, what="scale down")
    after_down = {w.instance_name for w in installation.client.list_instances(unique_name)}
    assert after_down <= after_up
    info = installation.client.describe_service(unique_name)
    assert info.total_instance == 2 and info.latest_version == 1


def test_modify_settings_restarts_instances_with_them(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    installation.client.create_service(python_service(unique_name, model_config={"k": 1}))
    installation.client.wait_until_running(unique_name, timeout=60)
    token = installation.client.describe_service(unique_name).access_token
    assert (
        json.loads(installation.predict(unique_name, b"whoami", token).content)["config"]
        == '{"k":1}'
    )
    change = write(workdir / "change.json", {"metadata": {"rpc.keepalive": 200}})
    installation.eascmd("modify", unique_name, "-s", str(change), "--wait")
    assert installation.predict(unique_name, b"sleep:600", token).status_code == 408
    info = installation.client.describe_service(unique_name)
    assert info.service_config["metadata"]["rpc.keepalive"] == 200
    assert info.access_token == token


def test_killed_instance_is_restarted_and_counted(
    installation: Installation, unique_name: str
) -> None:
    installation.client.create_service(python_service(unique_name, instances=2))
    installation.client.wait_until_running(unique_name, timeout=60)
    token = installation.client.describe_service(unique_name).access_token
    victim = installation.client.list_instances(unique_name)[0].instance_name
    record = json.loads((installation.data_dir / "instances" / victim / "record.json").read_text())
    os.kill(record["pid"], signal.SIGKILL)
    # The other instance keeps answering while the victim comes back.
    for _ in range(20):
        assert installation.predict(unique_name, b"echo:ok", token).status_code == 200
    restarted = wait_for(
        lambda: [
            w
            for w in installation.client.list_instances(unique_name)
            if w.instance_name == victim and w.restarts >= 1 and w.ready
        ],
        timeout=30,
        what="the killed instance to come back",
    )
    assert restarted[0].restarts == 1
    table = installation.eascmd("w", unique_name).stdout
    assert victim in table
    # A processor that exits mid-request: the caller gets an error, the instance comes back.
    answer = installation.predict(unique_name, b"exit", token)
    assert answer.status_code >= 500
    wait_for(
        lambda: installation.client.describe_service(unique_name).running_instance == 2,
        timeout=30,
        what="both instances ready again",
    )


def test_failing_initialize_is_reported(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    model = workdir / "model.txt"
    model.write_text("fail-initialize")
    installation.client.create_service(python_service(unique_name, model_path=str(model)))
    info = wait_for(
        lambda: (
            (d := installation.client.describe_service(unique_name)).status == ServiceStatus.FAILED
            and d
        ),
        timeout=30,
        what="the service to fail",
    )
    assert "this model refuses to load" in info.message
    workers = installation.client.list_instances(unique_name)
    assert "this model refuses to load" in workers[0].reason
    result = installation.eascmd(
        "create", str(write(workdir / "again.json", python_service(unique_name))), check=False
    )
    assert result.returncode == 1 and "already exists" in result.stderr


def test_controller_restart_loses_and_duplicates_nothing(
    installation: Installation, unique_name: str
) -> None:
    installation.client.create_service(python_service(unique_name, instances=2))
    installation.client.wait_until_running(unique_name, timeout=60)
    before = installation.client.describe_service(unique_name)
    instances_before = sorted(
        w.instance_name for w in installation.client.list_instances(unique_name)
    )
    services_before = sorted(s.service_name for s in installation.client.list_services())
    token = before.access_token

    old_pid = installation.pid("controller")
    os.kill(old_pid, signal.SIGKILL)
    # The gateway keeps serving from its last route table while no controller runs.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert installation.predict(unique_name, b"echo:up", token).status_code == 200
    wait_for(
        lambda: (
            installation.pid("controller") != old_pid
            and httpx.get(f"{installation.controller_url}/api/v1/health").status_code == 200
        ),
        timeout=60,
        what="the controller to be restarted by the installation",
    )
    for _ in range(20):
        assert installation.predict(unique_name, b"echo:up", token).status_code == 200

    after = installation.client.describe_service(unique_name)
    for key in (
        "access_token",
        "total_instance",
        "current_version",
        "latest_version",
        "service_config",
        "create_time",
    ):
        assert getattr(after, key) == getattr(before, key), key
    wait_for(
        lambda: installation.client.describe_service(unique_name).running_instance == 2,
        what="instances adopted",
    )
    instances_after = sorted(
        w.instance_name for w in installation.client.list_instances(unique_name)
    )
    assert instances_after == instances_before  # adopted, not started again
    assert sorted(s.service_name for s in installation.client.list_services()) == services_before


def test_gateway_restart_serves_again_at_once(installation: Installation, unique_name: str) -> None:
    installation.client.create_service(python_service(unique_name))
    installation.client.wait_until_running(unique_name, timeout=60)
    token = installation.client.describe_service(unique_name).access_token
    old_pid = installation.pid("gateway")
    os.kill(old_pid, signal.SIGKILL)
    wait_for(
        lambda: installation.predict(unique_name, b"echo:x", token).status_code == 200,
        timeout=30,
        what="the restarted gateway to serve",
    )
