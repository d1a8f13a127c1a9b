"""The public face for programs: the control client (what eascmd and pipelines use) and,
for callers of services, the prediction client."""

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
from eas_core.spec.service import VERSIONED_FIELDS

__all__ = [
    "ENDPOINT_TYPE_DEFAULT",
    "ENDPOINT_TYPE_DIRECT",
    "ENDPOINT_TYPE_GATEWAY",
    "VERSIONED_FIELDS",
    "AsyncPredictClient",
    "ClientConfig",
    "ControlClient",
    "PredictClient",
    "PredictException",
    "StringRequest",
    "StringResponse",
]
