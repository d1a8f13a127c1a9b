"""The public face for programs: the control client (what eascmd and pipelines use) and,
for callers of services, the prediction client."""

from eas_core.sdk.control import ClientConfig, ControlClient
from eas_core.spec.service import VERSIONED_FIELDS

__all__ = ["VERSIONED_FIELDS", "ClientConfig", "ControlClient"]
