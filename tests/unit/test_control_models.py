"""The control API's typed shapes: wire spellings in and out, statuses as enums, times as the
controller writes them, and a client that says so when an answer does not fit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from eas_core.errors import EASError
from eas_core.sdk import (
    ControlClient,
    Instance,
    InstanceStatus,
    ResourceGroup,
    ResourceGroupStatus,
    Service,
    ServiceLogs,
    ServiceStatus,
    ServiceSummary,
    Upload,
    Version,
)

SUMMARY_WIRE: dict[str, object] = {
    "ServiceName": "demo",
    "Status": "Running",
    "Region": "local",
    "CreateTime": "2026-01-31T08:00:00+00:00",
    "UpdateTime": "2026-01-31T08:05:09+00:00",
    "TotalInstance": 2,
    "RunningInstance": 1,
    "PendingInstance": 1,
    "CPU": 0.5,
    "Memory": 256,
    "GPU": 0,
    "Resource": "public",
    "Weight": 100,
    "LatestVersion": 3,
    "CurrentVersion": 2,
    "Message": "Service start successfully",
    "IntranetEndpoint": "http://127.0.0.1:8080/api/predict/demo",
    "InternetEndpoint": "http://127.0.0.1:8080/api/predict/demo",
}
SERVICE_WIRE: dict[str, object] = {
    **SUMMARY_WIRE,
    "AccessToken": "tok",
    "RelatedTo": None,
    "Released": False,
    "Retired": False,
    "ServiceConfig": {"name": "demo", "metadata": {"instance": 2, "rpc.keepalive": 200}, "x": 1},
}
INSTANCE_WIRE: dict[str, object] = {
    "InstanceName": "demo-1-1-abcd",
    "Node": "local",
    "IP": "127.0.0.1",
    "Port": 40001,
    "Status": "Restarting",
    "Ready": False,
    "Restarts": 1,
    "StartTime": "2026-01-31T08:00:01+00:00",
    "Version": 2,
    "Reason": "exited with code 1",
    "GPUs": "0,1",
    "GpuMemoryMB": 1500.0,
    "GpuUtil": 35.0,
}
VERSION_WIRE: dict[str, object] = {
    "Version": 1,
    "CreateTime": "2026-01-31T08:00:00+00:00",
    "ServiceConfig": {"name": "demo", "model_path": "eas://abc/model.txt"},
    "Artefacts": {
        "model": {
            "uri": "eas://abc/model.txt",
            "digest": "ab" * 32,
            "filename": "model.txt",
            "size": 5,
            "source": "/tmp/model.txt",
        }
    },
}
RESOURCE_WIRE: dict[str, object] = {
    "ResourceName": "public",
    "InstanceCount": 1,
    "CpuCount": 64.0,
    "GpuCount": 0,
    "Status": "ResourceReady",
    "Nodes": [
        {
            "name": "local",
            "ip": "127.0.0.1",
            "cpu": 64.0,
            "memory_mb": 262144,
            "gpu": 0,
            "used_cpu": 0.5,
            "used_memory_mb": 256,
            "used_gpu": 0,
            "group": "public",
            "labels": {},
            "instances": 1,
        }
    ],
    "Message": "Resource is ready",
    "Description": "",
    "Labels": {},
    "CreateTime": "",
}


@pytest.mark.parametrize(
    ("model", "wire"),
    [
        (ServiceSummary, SUMMARY_WIRE),
        (Service, SERVICE_WIRE),
        (Instance, INSTANCE_WIRE),
        (Version, VERSION_WIRE),
        (ResourceGroup, RESOURCE_WIRE),
        (Upload, {"uri": "eas://d/f.tar", "digest": "cd" * 32, "filename": "f.tar", "size": 9}),
        (ServiceLogs, {"ServiceName": "demo", "Logs": {"demo-1-1-abcd": ["a", "b"]}}),
    ],
)
def test_wire_json_round_trips_byte_for_byte(model: type[Service], wire: dict[str, object]) -> None:
    parsed = model.model_validate(wire)
    assert json.dumps(parsed.model_dump(by_alias=True, mode="json")) == json.dumps(wire)
    assert json.dumps(parsed.wire()) == json.dumps(wire)


def test_a_resource_group_from_an_older_controller_still_parses() -> None:
    """Groups answered before groups were created by name lack the newer keys."""
    older = {k: v for k, v in RESOURCE_WIRE.items() if k in ("ResourceName", "InstanceCount")}
    older |= {"CpuCount": 4, "GpuCount": 0, "Status": "ResourceReady", "Nodes": []}
    group = ResourceGroup.model_validate(older)
    assert (group.message, group.labels, group.create_time) == ("", {}, None)


def test_fields_are_snake_case_inside_and_wire_spellings_outside() -> None:
    summary = ServiceSummary.model_validate(SUMMARY_WIRE)
    assert (summary.service_name, summary.total_instance, summary.cpu) == ("demo", 2, 0.5)
    built = ServiceSummary(**{**dict(summary), "running_instance": 2, "pending_instance": 0})
    assert built.wire()["RunningInstance"] == 2 and built.wire()["PendingInstance"] == 0
    assert list(built.wire()) == list(SUMMARY_WIRE)


def test_statuses_parse_into_their_enums() -> None:
    assert Service.model_validate(SERVICE_WIRE).status is ServiceStatus.RUNNING
    assert Instance.model_validate(INSTANCE_WIRE).status is InstanceStatus.RESTARTING
    assert ResourceGroup.model_validate(RESOURCE_WIRE).status is ResourceGroupStatus.READY
    for status in ServiceStatus:
        parsed = ServiceSummary.model_validate({**SUMMARY_WIRE, "Status": status.value})
        assert parsed.status is status


def test_an_unknown_status_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ServiceSummary.model_validate({**SUMMARY_WIRE, "Status": "Sleeping"})
    [error] = caught.value.errors()
    assert error["loc"] == ("Status",)
    assert "Running" in error["msg"]


def test_times_are_utc_datetimes_written_with_an_offset() -> None:
    summary = ServiceSummary.model_validate(SUMMARY_WIRE)
    assert summary.create_time == datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
    # The store keeps UTC without a zone (and older controllers sent it so): taken as UTC.
    naive = ServiceSummary(**{**dict(summary), "create_time": datetime(2026, 1, 31, 9, 30, 5)})
    assert naive.create_time.tzinfo is UTC
    assert naive.wire()["CreateTime"] == "2026-01-31T09:30:05+00:00"
    unlabelled = Version.model_validate({**VERSION_WIRE, "CreateTime": "2026-01-31T08:00:00"})
    assert unlabelled.wire()["CreateTime"] == "2026-01-31T08:00:00+00:00"


def test_an_instance_not_started_has_an_empty_start_time_on_the_wire() -> None:
    pending = Instance.model_validate({**INSTANCE_WIRE, "StartTime": "", "Status": "Pending"})
    assert pending.start_time is None
    assert pending.wire()["StartTime"] == ""
    assert Instance(**{**dict(pending), "start_time": None}).wire()["StartTime"] == ""


def test_keys_a_newer_controller_adds_are_ignored() -> None:
    parsed = Service.model_validate({**SERVICE_WIRE, "Autoscaler": {"min": 1}})
    assert "Autoscaler" not in parsed.wire()
    assert parsed == Service.model_validate(SERVICE_WIRE)


def test_models_are_values() -> None:
    service = Service.model_validate(SERVICE_WIRE)
    with pytest.raises(ValidationError):
        service.status = ServiceStatus.FAILED  # type: ignore[misc]
    assert service == Service.model_validate(json.loads(json.dumps(SERVICE_WIRE)))


class _Answer(BaseHTTPRequestHandler):
    """A control API of another release: `desc` answers without most of today's fields."""

    def do_GET(self) -> None:
        body = json.dumps({"ServiceName": "demo", "Status": "Asleep"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_release() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_an_answer_of_another_shape_is_an_error_naming_the_call_and_fields(
    other_release: str,
) -> None:
    with ControlClient(other_release, "id", "secret") as client, pytest.raises(EASError) as caught:
        client.describe_service("demo")
    message = caught.value.message
    assert message.startswith("GET /api/v1/services/demo: ")
    assert "Status: Input should be 'Creating'" in message
    assert "Region: required" in message
    # 1 bad status and 21 missing fields: the first five named, the rest counted.
    assert message.endswith("; and 17 more); is the controller of another release?")
