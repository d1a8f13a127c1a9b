"""The public face for programs: the control client (what eascmd and pipelines use) with the
typed shapes it answers (Service, ServiceStatus, ...), and, for callers of services, the
prediction client with its requests.

The tensor requests (TFRequest, TorchRequest and their responses) need numpy and protobuf;
they are imported when first used, so `eascmd` starts without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from eas_core.spec.service import VERSIONED_FIELDS
from eas_core.spec.status import InstanceStatus, ResourceGroupStatus, ServiceStatus

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
    "VERSIONED_FIELDS",
    "AsyncPredictClient",
    "ClientConfig",
    "ControlClient",
    "ControlModel",
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
    "StringRequest",
    "StringResponse",
    "TFRequest",
    "TFResponse",
    "TorchRequest",
    "TorchResponse",
    "Upload",
    "Version",
    "VersionArtefact",
]
