"""Waiting for a service to serve, with a progress line on stderr each time it moves."""

from __future__ import annotations

from eas_core.cli import output
from eas_core.sdk import ControlClient, Service, ServiceStatus


def wait_running(
    client: ControlClient, name: str, timeout: float, version: int | None = None
) -> Service:
    def show(info: Service) -> None:
        if info.status == ServiceStatus.RUNNING:
            return
        output.progress(
            f"{info.status} [Total: {info.total_instance}, Pending: {info.pending_instance}, "
            f"Running: {info.running_instance}]"
        )

    info = client.wait_until_running(name, timeout=timeout, on_progress=show, version=version)
    output.progress("Service is running")
    return info
