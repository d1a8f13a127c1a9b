"""The public face for programs: the control client (what eascmd and pipelines use) with the
typed shapes it answers (Service, ServiceStatus, ...), and, for callers of services, the
prediction client with its requests. Clients that validate what they are given before
sending it (pipeline declarations) use the platform's own rules: the service-name rule and
the validation-error formatter; clients that upload packages pack and hash them the way the
installation does (``pack_directory``, ``file_digest``).

The tensor requests (TFRequest, TorchRequest and their responses) need numpy and protobuf;
they are imported when first used, so `eascmd` starts without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eas_core.artefacts import file_digest, pack_directory
from eas_core.sdk.control import ClientConfig, ControlClient
from eas_core.sdk.predict import (
    ENDPOINT_TYPE_DEFAULT,
    ENDPOINT_TYPE_DIRECT,
    ENDPOINT_TYPE_GATEWAY,
    AsyncPredictClient,
    PredictClient,
    PredictException,
    StringRequest,
    StringResponse,
)
from eas_core.spec.control import (
    ControlModel,
    Health,
    Instance,
    Node,
    ResourceGroup,
    Service,
    ServiceLogs,
    ServiceSummary,
    Upload,
    Version,
    VersionArtefact,
)
from eas_core.spec.service import (
    SERVICE_NAME,
    SERVICE_NAME_RULE,
    VERSIONED_FIELDS,
    check_service_name,
)
from eas_core.spec.shadow import (
    ShadowCounters,
    ShadowPair,
    ShadowReport,
    ShadowSetting,
)
from eas_core.spec.status import InstanceStatus, ResourceGroupStatus, ServiceStatus
from eas_core.spec.validation import FieldProblem, field_errors

if TYPE_CHECKING:
    from eas_core.sdk.requests import TFRequest, TFResponse, TorchRequest, TorchResponse

_TENSOR_REQUESTS = ("TFRequest", "TFResponse", "TorchRequest", "TorchResponse")


def __getattr__(name: str) -> Any:
    if name in _TENSOR_REQUESTS:
        from eas_core.sdk import requests

        return getattr(requests, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENDPOINT_TYPE_DEFAULT",
    "ENDPOINT_TYPE_DIRECT",
    "ENDPOINT_TYPE_GATEWAY",
    "SERVICE_NAME",
    "SERVICE_NAME_RULE",
    "VERSIONED_FIELDS",
    "AsyncPredictClient",
    "ClientConfig",
    "ControlClient",
    "ControlModel",
    "FieldProblem",
    "Health",
    "Instance",
    "InstanceStatus",
    "Node",
    "PredictClient",
    "PredictException",
    "ResourceGroup",
    "ResourceGroupStatus",
    "Service",
    "ServiceLogs",
    "ServiceStatus",
    "ServiceSummary",
    "ShadowCounters",
    "ShadowPair",
    "ShadowReport",
    "ShadowSetting",
    "StringRequest",
    "StringResponse",
    "TFRequest",
    "TFResponse",
    "TorchRequest",
    "TorchResponse",
    "Upload",
    "Version",
    "VersionArtefact",
    "check_service_name",
    "field_errors",
    "file_digest",
    "pack_directory",
]
