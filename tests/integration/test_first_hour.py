"""What a new user meets on a small machine: an installation of one 2-core node beside the
demo. A service that can never fit is refused at once, naming the numbers; one that fits the
node but not what is free now waits, and says why from the first tick."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from eas_core.errors import EASError
from tests.support.installation import (
    Installation,
    python_service,
    two_core_node_with_demo,
    wait_for,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    with two_core_node_with_demo(tmp_path_factory.mktemp("small") / "data") as running:
        yield running


def test_instances_that_never_fit_the_nodes_are_refused(
    small: Installation, cleanup: Callable[..., str]
) -> None:
    name = cleanup("never_fits", small.client)
    document = python_service(name, instances=3, metadata={"cpu": 1, "memory": 256})
    with pytest.raises(EASError) as refused:
        small.client.create_service(document)
    message = str(refused.value)
    assert "metadata.instance: 3 instances × 1 cpu, 256 MB need 3 cores" in message
    assert "resource group 'public' (2 cores, 8192 MB in all) hold at most 2" in message
    assert name not in [s["ServiceName"] for s in small.client.list_services()]
    # Memory counts as much as cores.
    document = python_service(name, instances=2, metadata={"cpu": 0.1, "memory": 5000})
    with pytest.raises(EASError, match=r"metadata.instance: 2 instances × 0.1 cpu, 5000 MB"):
        small.client.create_service(document)


def test_scaling_past_the_nodes_is_refused_and_changes_nothing(
    small: Installation, cleanup: Callable[..., str]
) -> None:
    name = cleanup("scale_past", small.client)
    small.client.create_service(python_service(name, metadata={"cpu": 0.5, "memory": 256}))
    with pytest.raises(EASError, match=r"metadata.instance: 5 instances × 0.5 cpu.*at most 4"):
        small.client.modify_service(name, {"metadata": {"instance": 5}})
    with pytest.raises(EASError, match=r"metadata.instance: 2 instances × 1.5 cpu"):
        small.client.modify_service(name, {"metadata": {"instance": 2, "cpu": 1.5}})
    assert small.client.describe_service(name)["TotalInstance"] == 1


def test_what_fits_the_node_but_not_its_free_room_waits_and_says_why(
    small: Installation, cleanup: Callable[..., str]
) -> None:
    """2 × 1 cpu fit 2 cores, but the demo holds 0.5: the second instance waits, and the
    service's Message says what it needs and who holds the rest from the first tick."""
    name = cleanup("waits_for_room", small.client)
    small.client.create_service(
        python_service(name, instances=2, metadata={"cpu": 1, "memory": 256})
    )
    waiting = wait_for(
        lambda: (
            (info := small.client.describe_service(name))["Message"].startswith("waiting") and info
        ),
        timeout=10,
        what="the reason to show",
    )
    assert waiting["Status"] == "Waiting"
    assert waiting["Message"] == (
        f"waiting for room on node local: needs 1 cpu, 0.5 of 2 free "
        f"(cpu held by demo 0.5, {name} 1)"
    )
    [pending] = [w for w in small.client.list_instances(name) if w["Status"] == "Pending"]
    assert pending["Reason"] == waiting["Message"]


def test_a_version_switch_keeps_the_resources_set_since(
    small: Installation, cleanup: Callable[..., str], tmp_path: Path
) -> None:
    """`eascmd version NAME 1` rolls back the model, not the cpu given since; with
    `--with-resources` the version's own come back too (the instance count never does)."""
    name = cleanup("keeps_resources", small.client)
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("first")
    second.write_text("second")
    document = python_service(
        name, model_path=str(first), metadata={"cpu": 0.5, "memory": 256, "rpc.max_queue_size": 8}
    )
    description = tmp_path / "service.json"
    description.write_text(json.dumps(document))
    small.eascmd("create", str(description))
    change = tmp_path / "change.json"
    change.write_text(json.dumps({"model_path": str(second)}))
    small.eascmd("modify", name, "-s", str(change), "--wait")
    small.eascmd("modify", name, "-Dmetadata.cpu=0.25", "-Dmetadata.rpc.max_queue_size=16")
    small.eascmd("version", name, "1", "--wait")
    info = small.client.describe_service(name)
    assert (info["CurrentVersion"], info["CPU"]) == (1, 0.25)
    meta = info["ServiceConfig"]["metadata"]
    assert (info["ServiceConfig"]["model_path"], meta["rpc.max_queue_size"]) == (str(first), 16)

    small.eascmd("version", name, "2", "--with-resources", "--wait")
    info = small.client.describe_service(name)
    assert (info["CurrentVersion"], info["CPU"], info["TotalInstance"]) == (2, 0.5, 1)
    assert info["ServiceConfig"]["model_path"] == str(second)
    assert info["ServiceConfig"]["metadata"]["rpc.max_queue_size"] == 8


def test_a_released_service_shows_the_endpoint_that_answers_for_it(
    small: Installation, cleanup: Callable[..., str], tmp_path: Path
) -> None:
    """Once released (even at 0%), a related service's own name stops answering: `desc` and
    `ls` show the original's endpoint and token, which serve its share."""
    name = cleanup("shown_answers", small.client)
    description = tmp_path / "service.json"
    description.write_text(json.dumps(python_service(name)))
    small.eascmd("create", str(description))
    small.eascmd("create", str(description), "-r")
    [green] = [
        s["ServiceName"]
        for s in small.client.list_services()
        if s["ServiceName"] != name and s["ServiceName"].startswith(f"{name}_")
    ]
    before = small.client.describe_service(green)
    assert before["IntranetEndpoint"].endswith(f"/api/predict/{green}")
    assert small.predict(green, b"x", before["AccessToken"]).status_code == 200

    small.eascmd("release", green, "-w", "0", "-y")
    shown = small.client.describe_service(green)
    [listed] = [s for s in small.client.list_services() if s["ServiceName"] == green]
    assert shown["IntranetEndpoint"].endswith(f"/api/predict/{name}")
    assert listed["IntranetEndpoint"] == shown["IntranetEndpoint"]
    answer = httpx.post(
        shown["IntranetEndpoint"],
        content=b"x",
        headers={"Authorization": shown["AccessToken"]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    closed = small.predict(green, b"x", before["AccessToken"])
    assert closed.status_code == 404
    assert f"released into {name!r}" in closed.text


def test_a_processor_entry_missing_from_its_package_is_refused_at_create(
    small: Installation, cleanup: Callable[..., str]
) -> None:
    name = cleanup("no_such_entry", small.client)
    with pytest.raises(EASError) as refused:
        small.client.create_service(python_service(name, app="apps.py"))
    message = str(refused.value)
    assert "processor_entry: 'apps.py' is not in the package" in message
    assert "app.py" in message  # what the package does hold
    assert name not in [s["ServiceName"] for s in small.client.list_services()]
    with pytest.raises(EASError, match=r"processor_entry: '../probe/app.py' points outside"):
        small.client.create_service(python_service(name, app="../probe/app.py"))
