"""The control API's answers, typed: what `ls`, `desc`, `w`, `versions`, `upload`, `logs` and
`resource` show.

Fields are snake_case inside and keep their PAI-EAS spellings on the wire as aliases
(``total_instance`` is ``TotalInstance``), so the controller builds them, the SDK parses them
and the CLI prints them from one definition, and the OpenAPI document shows them. Build them
by field name or by alias; dump them with ``model_dump(by_alias=True, mode="json")`` to get
the wire JSON back. Statuses are the enums of :mod:`eas_core.spec.status`.

Only the user's own documents stay plain JSON: a service's description (``ServiceConfig``)
is shown back as it was stored, unknown keys and all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from eas_core.spec.status import InstanceStatus, ResourceGroupStatus, ServiceStatus


def _as_utc(moment: datetime) -> datetime:
    # The store keeps UTC without a zone, and older controllers sent it that way.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _unset_time(value: object) -> object:
    return None if value == "" else value


def _as_utc_or_none(moment: datetime | None) -> datetime | None:
    return _as_utc(moment) if moment is not None else None


def _stamp_or_empty(moment: datetime | None) -> str:
    return _stamp(moment) if moment is not None else ""


# `2026-01-31T08:00:00+00:00` on the wire: whole seconds, the zone spelled as an offset.
Timestamp = Annotated[datetime, AfterValidator(_as_utc), PlainSerializer(_stamp, return_type=str)]
# An instance that has not started yet has no start time: "" on the wire.
OptionalTimestamp = Annotated[
    datetime | None,
    BeforeValidator(_unset_time),
    AfterValidator(_as_utc_or_none),
    PlainSerializer(_stamp_or_empty, return_type=str),
]


class ControlModel(BaseModel):
    """A control-API shape: wire names as aliases, immutable, tolerant of keys a newer
    controller may add (an older client keeps working)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        """The JSON object the control API sends (PAI-EAS spellings)."""
        return self.model_dump(by_alias=True, mode="json")

    def __getitem__(self, key: str) -> Any:
        """A field by its wire spelling (``service["AccessToken"]``), so code written against
        the JSON answers keeps working; attributes are the typed way."""
        for name, field in type(self).model_fields.items():
            if key in (field.alias, name):
                return getattr(self, name)
        raise KeyError(key)


class ServiceSummary(ControlModel):
    """One row of `eascmd ls`."""

    service_name: str = Field(alias="ServiceName")
    status: ServiceStatus = Field(alias="Status")
    region: str = Field(alias="Region")
    create_time: Timestamp = Field(alias="CreateTime")
    update_time: Timestamp = Field(alias="UpdateTime")
    total_instance: int = Field(alias="TotalInstance", description="Instances wanted.")
    running_instance: int = Field(
        alias="RunningInstance", description="Ready instances of the current version."
    )
    pending_instance: int = Field(alias="PendingInstance")
    cpu: float = Field(alias="CPU", description="Cores per instance.")
    memory: int = Field(alias="Memory", description="MB per instance.")
    gpu: int = Field(alias="GPU", description="GPUs per instance.")
    resource: str = Field(alias="Resource", description="The resource group.")
    weight: int = Field(
        alias="Weight",
        description="Percent of the endpoint's traffic: a related service's released share, "
        "an original's what its released related services leave it.",
    )
    latest_version: int = Field(alias="LatestVersion")
    current_version: int = Field(alias="CurrentVersion")
    message: str = Field(alias="Message", description="Why the service is in its status.")
    intranet_endpoint: str = Field(alias="IntranetEndpoint")
    internet_endpoint: str = Field(alias="InternetEndpoint")


class Service(ServiceSummary):
    """What `eascmd desc` shows, and what create, modify, version and release answer."""

    access_token: str = Field(alias="AccessToken", description="Empty for an open service.")
    related_to: str | None = Field(
        alias="RelatedTo", description="The original of a related (blue-green) service."
    )
    released: bool = Field(alias="Released")
    retired: bool = Field(
        alias="Retired",
        description="Deleted while a released related service serves its endpoint: its name "
        "and token stay until that one is deleted too.",
    )
    service_config: dict[str, Any] = Field(
        alias="ServiceConfig", description="The description of the current version, as stored."
    )


class Instance(ControlModel):
    """One row of `eascmd w`."""

    instance_name: str = Field(alias="InstanceName")
    node: str = Field(alias="Node")
    ip: str = Field(alias="IP")
    port: int = Field(alias="Port")
    status: InstanceStatus = Field(alias="Status")
    ready: bool = Field(alias="Ready", description="Running and answering: in the route table.")
    restarts: int = Field(alias="Restarts")
    start_time: OptionalTimestamp = Field(alias="StartTime")
    version: int = Field(alias="Version")
    reason: str = Field(alias="Reason", description="Why it is not ready, or last restarted.")
    gpus: str = Field(
        "", alias="GPUs", description="GPU indices it holds, as its CUDA_VISIBLE_DEVICES."
    )
    gpu_memory_mb: float = Field(
        0, alias="GpuMemoryMB", description="GPU memory its processes hold, at the last scrape."
    )
    gpu_util: float = Field(
        0, alias="GpuUtil", description="Busiest utilisation (%) of the GPUs it holds memory on."
    )


class VersionArtefact(ControlModel):
    """A package of a version, as snapshotted into the installation's artefact store."""

    uri: str
    digest: str = Field(description="sha256 of the stored file, hex.")
    filename: str
    size: int
    source: str = Field(description="Where the description said to fetch it from.")


class Version(ControlModel):
    """One row of `eascmd versions`, or `eascmd desc NAME --version N`."""

    version: int = Field(alias="Version")
    create_time: Timestamp = Field(alias="CreateTime")
    service_config: dict[str, Any] = Field(alias="ServiceConfig")
    artefacts: dict[str, VersionArtefact] = Field(
        alias="Artefacts", description="By kind: `model`, `processor`."
    )


class Node(ControlModel):
    """A machine instances run on: capacity and what is used of it (`eascmd resource li`)."""

    name: str
    ip: str
    cpu: float
    memory_mb: int
    gpu: int
    used_cpu: float
    used_memory_mb: int
    used_gpu: int
    group: str = Field(description="The resource group the node is in.")
    labels: dict[str, str]
    instances: int = Field(0, description="Instances placed on the node now.")


class ResourceGroup(ControlModel):
    """One row of `eascmd resource ls`."""

    resource_name: str = Field(alias="ResourceName")
    instance_count: int = Field(alias="InstanceCount", description="Nodes in the group.")
    cpu_count: float = Field(alias="CpuCount")
    gpu_count: int = Field(alias="GpuCount")
    status: ResourceGroupStatus = Field(alias="Status")
    nodes: list[Node] = Field(alias="Nodes")
    message: str = Field("", alias="Message")
    description: str = Field("", alias="Description")
    labels: dict[str, str] = Field(default_factory=dict, alias="Labels")
    create_time: OptionalTimestamp = Field(
        None, alias="CreateTime", description="Empty for a group only its nodes' labels make."
    )


class ResourceGroupDetail(ResourceGroup):
    """`eascmd resource desc`: the group, and the services placed in it."""

    services: list[str] = Field(alias="Services", description="Services naming this group.")
    service_instance_count: int = Field(
        alias="ServiceInstanceCount", description="Instances of those services, placed or not."
    )


# A resource group's name: it is also a Ray custom resource (`group:NAME`) and a node label.
RESOURCE_GROUP_NAME = r"^[a-z][a-z0-9_-]{0,63}$"


class ResourceGroupRequest(ControlModel):
    """`eascmd resource create`: a group that nodes join by its name."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    name: str = Field(
        alias="Name",
        pattern=RESOURCE_GROUP_NAME,
        description="Lower-case letter first, then letters, digits, '-' or '_'; at most 64.",
    )
    description: str = Field("", alias="Description", max_length=1024)
    labels: dict[str, str] = Field(default_factory=dict, alias="Labels")


class Upload(ControlModel):
    """What `eascmd upload` answers: the URI to deploy from, and what it names."""

    uri: str = Field(description="Use as model_path or processor_path.")
    digest: str = Field(description="sha256 of the file, hex.")
    filename: str
    size: int


class ServiceLogs(ControlModel):
    """The last lines of each instance's log (`eascmd logs`)."""

    service_name: str = Field(alias="ServiceName")
    logs: dict[str, list[str]] = Field(alias="Logs", description="Lines by instance name.")


class Health(ControlModel):
    """The controller's liveness answer (no signature needed)."""

    status: Literal["ok"]
    version: str
    pid: int
    # Of several controllers on one store, the one holding the leader lease is "leader";
    # the others are "standby" and answer only this (eas_core/controller/standby.py).
    role: Literal["leader", "standby"] = "leader"
    # The address the leader announced (its control API), when the store names one.
    leader: str | None = None


__all__ = [
    "ControlModel",
    "Health",
    "Instance",
    "Node",
    "ResourceGroup",
    "Service",
    "ServiceLogs",
    "ServiceSummary",
    "Upload",
    "Version",
    "VersionArtefact",
]
