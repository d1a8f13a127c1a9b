"""Versions, rolling updates, rollback and blue-green under a steady load: no failed request."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class Served:
    """A service of the session installation under a steady load through the gateway."""

    installation: Installation
    name: str
    token: str
    workdir: Path
    load: SteadyLoad
    figures: dict[str, float] = field(default_factory=dict)  # printed, never asserted

    def eascmd(self, *args: str) -> str:
        return self.installation.eascmd(*args).stderr

    def timed(self, figure: str, *args: str) -> None:
        started = time.monotonic()
        self.eascmd(*args)
        self.figures[figure] = time.monotonic() - started

    def served_by(self, count: int = 40) -> set[str]:
        """The models that answered the next ``count`` calls; every one must succeed."""
        calls = self.load.next_calls(count)
        assert all(status == 200 for status, _ in calls), calls
        return {who(body) for _, body in calls}


def only(text: str) -> Callable[[bytes], bool]:
    return lambda body: who(body) == text


def roll_to_a_new_model(served: Served) -> None:
    """A new model rolls out as version 2; once the gateway has it, only v2 answers."""
    change = served.workdir / "v2.json"
    change.write_text(json.dumps({"model_path": model(served.workdir, "v2")}))
    served.timed("roll_seconds", "modify", served.name, "-s", str(change), "--wait")
    info = served.installation.client.describe_service(served.name)
    assert (info.latest_version, info.current_version, info.status) == (2, 2, ServiceStatus.RUNNING)
    served.load.settle(only("v2"))
    assert served.served_by() == {"v2"}


def roll_back_to_version_1(served: Served) -> None:
    served.timed("rollback_seconds", "version", served.name, "1", "--wait")
    assert served.installation.client.describe_service(served.name).current_version == 1
    served.load.settle(only("v1"))
    assert served.served_by() == {"v1"}


def create_a_related_service(served: Served) -> tuple[str, str]:
    """`create -r`: a green service of its own, answering on its own endpoint only."""
    installation = served.installation
    document = python_service(served.name, instances=2, model_path=model(served.workdir, "green"))
    green = served.workdir / "green.json"
    green.write_text(json.dumps(document))
    created = installation.eascmd("create", str(green), "-r").stdout
    related = next(
        s.service_name
        for s in installation.client.list_services()
        if s.service_name.startswith(served.name + "_")
    )
    assert f"/api/predict/{related}" in created
    related_token = installation.client.describe_service(related).access_token
    assert installation.predict(related, b"whoami", related_token).status_code == 200
    assert served.served_by() == {"v1"}  # the original endpoint is not split yet
    return related, related_token


def release_twenty_then_all(served: Served, related: str, related_token: str) -> None:
    """20% of the original endpoint's calls go to the related service, then all of them."""
    served.eascmd("release", related, "-w", "20", "-y")
    released = time.monotonic()
    wait_for(
        lambda: any(
            status == 200 and who(body) == "green"
            for status, body in served.load.calls_since(released)
        ),
        what="the first call split to the related service",
    )
    calls = served.load.next_calls(400)
    assert all(status == 200 for status, _ in calls), calls
    green = sum(who(body) == "green" for _, body in calls) / len(calls)
    served.figures["green_share_at_20"] = green
    assert 0.12 <= green <= 0.28, green
    # The related service's own endpoint is closed once released.
    assert served.installation.predict(related, b"whoami", related_token).status_code == 404

    served.eascmd("release", related, "-w", "100", "-y")
    served.load.settle(only("green"))
    assert served.served_by() == {"green"}


def delete_the_original(served: Served) -> None:
    """Its instances drain and stop; its endpoint keeps answering, from the related service."""
    served.eascmd("delete", served.name, "-y", "--no-wait")
    wait_for(
        lambda: not served.installation.client.list_instances(served.name),
        what="the original's instances to stop",
    )
    assert served.served_by() == {"green"}


def scale_down(served: Served, related: str) -> None:
    """The serving side scales down without a roll."""
    served.eascmd("modify", related, "-Dmetadata.instance=1", "--wait")
    wait_for(
        lambda: len(served.installation.client.list_instances(related)) == 1, what="scale down"
    )
    assert served.served_by() == {"green"}


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

    with SteadyLoad(url, token, b"whoami", threads=4) as load:
        served = Served(installation, name, token, workdir, load)
        assert served.served_by(20) == {"v1"}
        roll_to_a_new_model(served)
        roll_back_to_version_1(served)
        related, related_token = create_a_related_service(served)
        release_twenty_then_all(served, related, related_token)
        delete_the_original(served)
        scale_down(served, related)

    answers = load.result.answers
    print(f"\nrequests={len(answers)} failures={len(load.result.failures)} {served.figures}")
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
        load.next_calls(20)  # and the calls after the failed roll
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
        wait_for(  # new instances are starting, old ones serve
            lambda: any(w.version == 2 for w in installation.client.list_instances(name)),
            what="the new version's instances to be placed",
        )
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
        load.settle(lambda body: who(body) == "slow-initialize:2")
        after = load.next_calls(40)
    assert not load.result.failures, load.result.failures[:5]
    assert {who(body) for _, body in after} == {"slow-initialize:2"}
