"""Versions, rolling updates, rollback and blue-green under a steady load: no failed request."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from eas_core.sdk import ServiceStatus
from tests.support.installation import Installation, python_service, wait_for
from tests.support.load import SteadyLoad


def model(workdir: Path, text: str) -> str:
    path = workdir / f"model-{text.replace(':', '_')}.txt"
    path.write_text(text)
    return str(path)


def who(body: bytes) -> str:
    """The model text a probe answer came from."""
    return str(json.loads(body)["model"])


def test_roll_rollback_blue_green_and_scale_with_no_failed_request(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    name = unique_name
    installation.client.create_service(
        python_service(name, instances=2, model_path=model(workdir, "v1"))
    )
    installation.client.wait_until_running(name, timeout=60)
    token = installation.client.describe_service(name).access_token
    url = f"{installation.gateway_url}/api/predict/{name}"
    figures: dict[str, float] = {}

    with SteadyLoad(url, token, b"whoami", threads=4) as load:
        time.sleep(1)
        # (a) a new model rolls out as version 2.
        change = workdir / "v2.json"
        change.write_text(json.dumps({"model_path": model(workdir, "v2")}))
        started = time.monotonic()
        installation.eascmd("modify", name, "-s", str(change), "--wait")
        figures["roll_seconds"] = time.monotonic() - started
        info = installation.client.describe_service(name)
        assert (info.latest_version, info.current_version) == (2, 2)
        assert info.status == ServiceStatus.RUNNING
        time.sleep(0.5)
        mark = time.monotonic()
        time.sleep(1)
        assert set(map(who, load.result.bodies_since(mark))) == {"v2"}

        # (b) roll back to version 1 the same way.
        started = time.monotonic()
        installation.eascmd("version", name, "1", "--wait")
        figures["rollback_seconds"] = time.monotonic() - started
        assert installation.client.describe_service(name).current_version == 1
        time.sleep(0.5)
        mark = time.monotonic()
        time.sleep(1)
        assert set(map(who, load.result.bodies_since(mark))) == {"v1"}

        # (c) blue-green: a related service, then 20% → 100% → delete the original.
        related_doc = workdir / "green.json"
        related_doc.write_text(
            json.dumps(python_service(name, instances=2, model_path=model(workdir, "green")))
        )
        created = installation.eascmd("create", str(related_doc), "-r").stdout
        related = next(
            s.service_name
            for s in installation.client.list_services()
            if s.service_name.startswith(name + "_")
        )
        assert f"/api/predict/{related}" in created
        related_token = installation.client.describe_service(related).access_token
        assert installation.predict(related, b"whoami", related_token).status_code == 200
        assert all(who(b) == "v1" for b in load.result.bodies_since(time.monotonic() - 0.5))

        installation.eascmd("release", related, "-w", "20", "-y")
        time.sleep(0.5)
        mark = time.monotonic()
        time.sleep(3)
        shares = load.result.bodies_since(mark)
        counted = {m: 0 for m in ("v1", "green")}
        for body, n in shares.items():
            counted[who(body)] += n
        total = sum(counted.values())
        figures["green_share_at_20"] = counted["green"] / total
        assert 0.12 <= counted["green"] / total <= 0.28, counted
        # The related service's own endpoint is closed once released.
        assert installation.predict(related, b"whoami", related_token).status_code == 404

        installation.eascmd("release", related, "-w", "100", "-y")
        time.sleep(0.5)
        mark = time.monotonic()
        time.sleep(1)
        assert set(map(who, load.result.bodies_since(mark))) == {"green"}

        installation.eascmd("delete", name, "-y", "--no-wait")
        time.sleep(2.5)  # the original's instances drain and stop
        mark = time.monotonic()
        time.sleep(1)
        assert set(map(who, load.result.bodies_since(mark))) == {"green"}

        # (d) scale the serving side down without a roll.
        installation.eascmd("modify", related, "-Dmetadata.instance=1", "--wait")
        wait_for(lambda: len(installation.client.list_instances(related)) == 1, what="scale down")
        time.sleep(1)

    answers = load.result.answers
    print(f"\nrequests={len(answers)} failures={len(load.result.failures)} {figures}")
    assert answers and not load.result.failures, load.result.failures[:5]
    # The original endpoint and token kept answering throughout, now from the related service.
    assert who(installation.predict(name, b"whoami", token).content) == "green"
    installation.client.delete_service(related)
    wait_for(
        lambda: installation.predict(name, b"whoami", token).status_code == 404,
        what="both sides gone",
    )


def test_failed_roll_keeps_the_previous_version_serving(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    name = unique_name
    installation.client.create_service(
        python_service(name, instances=2, model_path=model(workdir, "good"))
    )
    installation.client.wait_until_running(name, timeout=60)
    token = installation.client.describe_service(name).access_token
    change = workdir / "bad.json"
    change.write_text(json.dumps({"model_path": model(workdir, "fail-initialize")}))
    with SteadyLoad(f"{installation.gateway_url}/api/predict/{name}", token, b"whoami") as load:
        result = installation.eascmd("modify", name, "-s", str(change), "--wait", check=False)
        time.sleep(1)
    assert result.returncode == 1
    assert "this model refuses to load" in result.stderr
    assert not load.result.failures
    assert {who(b) for b in load.result.bodies_since(0)} == {"good"}
    info = installation.client.describe_service(name)
    assert (info.current_version, info.latest_version) == (1, 2)
    assert "Rolling to version 2 failed" in info.message
    wait_for(
        lambda: {w.version for w in installation.client.list_instances(name)} == {1},
        what="the failed version's instances to go",
    )
    # Every version stays retrievable, with its artefact snapshot.
    stored = installation.eascmd_json("desc", name, "--version", "2")
    assert stored["ServiceConfig"]["model_path"].endswith("fail-initialize.txt")
    assert stored["Artefacts"]["model"]["uri"].startswith("eas://")
    assert [v["Version"] for v in installation.eascmd_json("versions", name)] == [1, 2]
    installation.client.delete_service(name)


def test_old_version_restores_after_its_source_changed(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    name = unique_name
    source = workdir / "model.txt"
    source.write_text("first")
    installation.client.create_service(python_service(name, model_path=str(source)))
    installation.client.wait_until_running(name, timeout=60)
    token = installation.client.describe_service(name).access_token
    installation.client.modify_service(name, {"model_path": model(workdir, "second")})
    installation.client.wait_until_running(name, timeout=60, version=2)
    source.write_text("overwritten")  # the artefact source changes after the fact
    installation.client.switch_version(name, 1)
    installation.client.wait_until_running(name, timeout=60, version=1)
    wait_for(
        lambda: who(installation.predict(name, b"whoami", token).content) == "first",
        what="version 1's own model",
    )
    installation.client.delete_service(name)


def test_controller_restart_mid_roll_finishes_the_roll(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    name = unique_name
    installation.client.create_service(
        python_service(name, instances=2, model_path=model(workdir, "old"))
    )
    installation.client.wait_until_running(name, timeout=60)
    token = installation.client.describe_service(name).access_token
    with SteadyLoad(f"{installation.gateway_url}/api/predict/{name}", token, b"whoami") as load:
        installation.client.modify_service(
            name, {"model_path": model(workdir, "slow-initialize:2")}
        )
        time.sleep(0.8)  # new instances are starting, old ones serve
        old_pid = installation.pid("controller")
        os.kill(old_pid, signal.SIGKILL)
        wait_for(
            lambda: (
                installation.pid("controller") != old_pid
                and httpx.get(f"{installation.controller_url}/api/v1/health").status_code == 200
            ),
            timeout=60,
            what="the controller to come back",
        )
        installation.client.wait_until_running(name, timeout=60, version=2)
        wait_for(
            lambda: (
                {w.version for w in installation.client.list_instances(name)} == {2}
                and len(installation.client.list_instances(name)) == 2
            ),
            timeout=30,
            what="exactly the new version's instances",
        )
        time.sleep(0.5)
        mark = time.monotonic()
        time.sleep(1)
    assert not load.result.failures, load.result.failures[:5]
    assert {who(b) for b in load.result.bodies_since(mark)} == {"slow-initialize:2"}
    installation.client.delete_service(name)
