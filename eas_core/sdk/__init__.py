"""The public face for programs: the control client (what eascmd and pipelines use) and,
for callers of services, the prediction client."""

from eas_core.sdk.control import ClientConfig, ControlClient

__all__ = ["ClientConfig", "ControlClient"]
