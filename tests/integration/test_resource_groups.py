"""Resource groups a user manages through eascmd on the local backend: created by name,
described with their nodes and services, refused when unknown, deleted when unused; a
service in a group no node has joined waits Pending and says why."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from eas_core.errors import Conflict, EASError, InvalidDescription, NotFound
from tests.support.installation import Installation, python_service, wait_for


@contextlib.contextmanager
def group(installation: Installation, name: str, *args: str) -> Iterator[str]:
    installation.eascmd("resource", "create", name, *args)
    try:
        yield name
    finally:
        with contextlib.suppress(NotFound):
            installation.client.delete_resource(name)


def test_a_created_group_is_listed_described_and_deleted(installation: Installation) -> None:
    with group(installation, "g_made", "-d", "two GPU nodes", "--label", "team=vision"):
        listed = {g["ResourceName"]: g for g in installation.eascmd_json("resource", "ls")}
        assert set(listed) >= {"public", "g_made"}
        made = listed["g_made"]
        assert (made["Status"], made["InstanceCount"], made["Nodes"]) == ("ResourcePending", 0, [])
        assert (made["Description"], made["Labels"]) == ("two GPU nodes", {"team": "vision"})
        assert made["CreateTime"]
        assert "EAS_NODE_RESOURCE_GROUP=g_made" in made["Message"]
        shown = installation.eascmd("resource", "desc", "g_made").stdout
        assert "ResourcePending" in shown and "two GPU nodes" in shown
        again = installation.eascmd("resource", "create", "g_made", check=False)
        assert again.returncode != 0
        assert "resource group 'g_made' already exists" in again.stderr
    assert "g_made" not in {g["ResourceName"] for g in installation.eascmd_json("resource", "ls")}


def test_public_shows_its_node_usage_and_instances_and_cannot_be_deleted(
    installation: Installation, unique_name: str
) -> None:
    installation.client.create_service(python_service(unique_name, metadata={"cpu": 2}))
    installation.client.wait_until_running(unique_name, timeout=120)
    # No GPU on this node: the GPU columns of `w` are empty and zero, not errors.
    [worker] = installation.eascmd_json("w", unique_name)
    assert (worker["GPUs"], worker["GpuMemoryMB"], worker["GpuUtil"]) == ("", 0, 0)
    assert "GpuMemoryMB" in installation.eascmd("w", unique_name).stdout
    [node] = installation.eascmd_json("resource", "li", "public")
    assert node["used_cpu"] >= 2 and node["instances"] >= 1
    table = installation.eascmd("resource", "li", "public").stdout
    assert "CPU total/used" in table and "64/" in table
    described = installation.client.describe_resource("public")
    assert unique_name in described.services
    assert described.service_instance_count >= 1
    with pytest.raises(EASError, match="resource group 'public' cannot be deleted"):
        installation.client.delete_resource("public")


def test_a_service_in_a_group_with_no_node_waits_pending_saying_so(
    installation: Installation, unique_name: str
) -> None:
    with group(installation, "g_empty"):
        document = python_service(unique_name, metadata={"resource": "g_empty"})
        installation.client.create_service(document)
        reason = "resource group g_empty has no node"
        [instance] = wait_for(
            lambda: [
                i for i in installation.client.list_instances(unique_name) if reason in i.reason
            ],
            timeout=60,
            what="the instance's reason",
        )
        assert instance.status == "Pending"
        print(f"w shows: {instance.status} — {instance.reason}")
        desc = installation.client.describe_service(unique_name)
        assert (desc.status, desc.message) == ("Waiting", reason)
        assert reason in installation.eascmd("w", unique_name).stdout
        assert installation.client.describe_resource("g_empty").services == [unique_name]
        with pytest.raises(Conflict, match=f"used by service.s. {unique_name}: delete them"):
            installation.client.delete_resource("g_empty")
        installation.client.delete_service(unique_name)
        installation.client.wait_until_deleted(unique_name, timeout=60)
        installation.client.delete_resource("g_empty")
    with pytest.raises(NotFound, match="no resource group 'g_empty'"):
        installation.client.describe_resource("g_empty")


def test_a_service_naming_an_unknown_group_is_refused_listing_the_known_ones(
    installation: Installation, unique_name: str
) -> None:
    with group(installation, "g_known"):
        document = python_service(unique_name, metadata={"resource": "g_missing"})
        with pytest.raises(InvalidDescription) as refused:
            installation.client.create_service(document)
    assert "metadata.resource: no resource group 'g_missing' (have: g_known, public)" in (
        refused.value.message
    )


def test_a_group_name_that_cannot_be_a_node_label_is_refused(installation: Installation) -> None:
    refused = installation.eascmd("resource", "create", "Bad Name", check=False)
    assert refused.returncode != 0
    assert "Name" in refused.stderr
    assert "Bad Name" not in {g["ResourceName"] for g in installation.eascmd_json("resource", "ls")}
