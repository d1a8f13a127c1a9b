"""The control API's answers as a real controller sends them: the OpenAPI document names each
typed shape, and the JSON of `ls`, `desc`, `w`, `versions` (and the other reads) keeps exactly
the PAI-EAS keys, in the order it always had, through the API and `eascmd --json` alike."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from eas_core.spec.status import ServiceStatus
from tests.support.installation import Installation, python_service

SUMMARY_KEYS = [
    "ServiceName",
    "Status",
    "Region",
    "CreateTime",
    "UpdateTime",
    "TotalInstance",
    "RunningInstance",
    "PendingInstance",
    "CPU",
    "Memory",
    "GPU",
    "Resource",
    "Weight",
    "LatestVersion",
    "CurrentVersion",
    "Message",
    "IntranetEndpoint",
    "InternetEndpoint",
]
SERVICE_KEYS = [*SUMMARY_KEYS, "AccessToken", "RelatedTo", "Released", "Retired", "ServiceConfig"]
INSTANCE_KEYS = [
    "InstanceName",
    "Node",
    "IP",
    "Port",
    "Status",
    "Ready",
    "Restarts",
    "StartTime",
    "Version",
    "Reason",
    # Added after the PAI-EAS keys, in this order: what GPUs the instance holds and uses.
    "GPUs",
    "GpuMemoryMB",
    "GpuUtil",
]
VERSION_KEYS = ["Version", "CreateTime", "ServiceConfig", "Artefacts"]
ARTEFACT_KEYS = ["uri", "digest", "filename", "size", "source"]
RESOURCE_KEYS = [
    "ResourceName",
    "InstanceCount",
    "CpuCount",
    "GpuCount",
    "Status",
    "Nodes",
    # Added for groups a user creates.
    "Message",
    "Description",
    "Labels",
    "CreateTime",
]
NODE_KEYS = [
    "name",
    "ip",
    "cpu",
    "memory_mb",
    "gpu",
    "used_cpu",
    "used_memory_mb",
    "used_gpu",
    "group",
    "labels",
    "instances",
]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


@pytest.fixture(scope="module")
def served(installation: Installation) -> Iterator[str]:
    """One running service with a model, so every read has something to show."""
    name = "shapes_probe"
    model = installation.data_dir.parent / "shapes-model.txt"
    model.write_text("model v1")
    installation.client.create_service(python_service(name, model_path=str(model)))
    installation.client.wait_until_running(name, timeout=60)
    yield name
    installation.client.delete_service(name)


def raw(installation: Installation, path: str) -> Any:
    """The control API's own JSON, not parsed by the client's models."""
    return installation.client.request("GET", path)


def test_openapi_document_names_every_answer_shape(installation: Installation) -> None:
    document = httpx.get(f"{installation.controller_url}/openapi.json", timeout=10).json()
    schemas = document["components"]["schemas"]
    for name in (
        "ServiceSummary",
        "Service",
        "Instance",
        "Version",
        "VersionArtefact",
        "ResourceGroup",
        "Node",
        "Upload",
        "ServiceLogs",
        "Health",
        "ServiceStatus",
        "InstanceStatus",
    ):
        assert name in schemas, name
    assert list(schemas["Service"]["properties"]) == SERVICE_KEYS
    assert list(schemas["ServiceSummary"]["properties"]) == SUMMARY_KEYS
    assert list(schemas["Instance"]["properties"]) == INSTANCE_KEYS
    assert schemas["ServiceStatus"]["enum"] == [s.value for s in ServiceStatus]

    def answer(path: str, method: str = "get") -> dict[str, Any]:
        responses = document["paths"][path][method]["responses"]
        ok = responses.get("200") or responses["201"]
        schema: dict[str, Any] = ok["content"]["application/json"]["schema"]
        return schema.get("items", schema)

    ref = "#/components/schemas/"
    assert answer("/api/v1/services") == {"$ref": ref + "ServiceSummary"}
    assert answer("/api/v1/services", "post") == {"$ref": ref + "Service"}
    assert answer("/api/v1/services/{name}") == {"$ref": ref + "Service"}
    assert answer("/api/v1/services/{name}", "put") == {"$ref": ref + "Service"}
    assert answer("/api/v1/services/{name}/instances") == {"$ref": ref + "Instance"}
    assert answer("/api/v1/services/{name}/versions") == {"$ref": ref + "Version"}
    assert answer("/api/v1/services/{name}/logs") == {"$ref": ref + "ServiceLogs"}
    assert answer("/api/v1/artefacts", "post") == {"$ref": ref + "Upload"}
    assert answer("/api/v1/resources") == {"$ref": ref + "ResourceGroup"}


def test_desc_ls_w_versions_json_keep_their_keys(installation: Installation, served: str) -> None:
    for described in (
        raw(installation, f"/api/v1/services/{served}"),
        installation.eascmd_json("desc", served),
    ):
        assert list(described) == SERVICE_KEYS
        assert STAMP.match(described["CreateTime"]) and STAMP.match(described["UpdateTime"])
        assert described["Status"] == "Running" and described["RelatedTo"] is None
    for listed in (raw(installation, "/api/v1/services"), installation.eascmd_json("ls")):
        [row] = [r for r in listed if r["ServiceName"] == served]
        assert list(row) == SUMMARY_KEYS
    for workers in (
        raw(installation, f"/api/v1/services/{served}/instances"),
        installation.eascmd_json("w", served),
    ):
        [worker] = workers
        assert list(worker) == INSTANCE_KEYS
        assert worker["Status"] == "Running" and STAMP.match(worker["StartTime"])
    for versions in (
        raw(installation, f"/api/v1/services/{served}/versions"),
        installation.eascmd_json("versions", served),
    ):
        [version] = versions
        assert list(version) == VERSION_KEYS
        assert list(version["Artefacts"]) == ["model", "processor"]
        assert all(list(a) == ARTEFACT_KEYS for a in version["Artefacts"].values())
    assert list(installation.eascmd_json("desc", served, "--version", "1")) == VERSION_KEYS


def test_other_reads_keep_their_keys(installation: Installation, served: str) -> None:
    [group] = installation.eascmd_json("resource", "ls")
    assert list(group) == RESOURCE_KEYS and group["Status"] == "ResourceReady"
    assert all(list(node) == NODE_KEYS for node in group["Nodes"])
    assert installation.eascmd_json("resource", "li", "public") == group["Nodes"]
    logs = installation.eascmd_json("logs", served)
    assert list(logs) == ["ServiceName", "Logs"] and logs["ServiceName"] == served
    upload = installation.eascmd_json(
        "upload", str(installation.data_dir.parent / "shapes-model.txt")
    )
    assert list(upload) == ["uri", "digest", "filename", "size"]
    health = httpx.get(f"{installation.controller_url}/api/v1/health", timeout=10).json()
    assert list(health) == ["status", "version", "pid", "role", "leader"]
    assert health["role"] == "leader"  # the one controller of this installation


def test_cli_json_is_what_the_api_sends(installation: Installation, served: str) -> None:
    api = raw(installation, f"/api/v1/services/{served}/versions")
    assert installation.eascmd_json("versions", served) == api
    described = raw(installation, f"/api/v1/services/{served}")
    shown = installation.eascmd_json("desc", served)
    # Only what moves between two reads may differ.
    moving = {"UpdateTime", "Message", "RunningInstance", "PendingInstance", "Status"}
    assert {k: v for k, v in shown.items() if k not in moving} == {
        k: v for k, v in described.items() if k not in moving
    }
