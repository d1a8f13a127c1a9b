"""Waiting for a service to serve: a progress line on stderr each time what the controller
says about it changes (the counts, and why an instance is not running yet), a red failure
line and exit status 1 as soon as it cannot get there (Failed, stopped, a roll undone, out of
time)."""

from __future__ import annotations

from collections.abc import Sequence

from eas_core.cli import output
from eas_core.errors import EASError
from eas_core.sdk import ControlClient, Instance, InstanceStatus, Service, ServiceStatus


def wait_line(info: Service, instances: Sequence[Instance]) -> str:
    """What a wait shows of a service that is not running yet.

    During a roll the old and new versions' instances are counted apart (the service's
    running count is the new version's only, so "Running: 0" would hide the old version
    still serving); otherwise the counts. Either way followed by the controller's reason."""
    live = [i for i in instances if i.status != InstanceStatus.TERMINATING]
    old = [i for i in live if i.version != info.current_version]
    if info.status == ServiceStatus.UPDATING and old:
        versions = ",".join(str(v) for v in sorted({i.version for i in old}))
        serving = sum(1 for i in old if i.ready)
        counts = (
            f"[version {versions} → {info.current_version}: new {info.running_instance}/"
            f"{info.total_instance} running, old {serving} serving]"
        )
    else:
        counts = (
            f"[Total: {info.total_instance}, Pending: {info.pending_instance}, "
            f"Running: {info.running_instance}]"
        )
    return f"{info.status} {counts}{_reason(info, live)}"


def _reason(info: Service, live: Sequence[Instance]) -> str:
    """The service's message, and the reasons of its new instances not ready yet where they
    say more than the message does."""
    reasons = [info.message] if info.message else []
    seen = set(reasons)
    for instance in live:
        if instance.version != info.current_version or instance.ready or not instance.reason:
            continue
        if instance.reason not in seen:
            seen.add(instance.reason)
            reasons.append(f"{instance.instance_name}: {instance.reason}")
    return (": " + "; ".join(reasons)) if reasons else ""


def wait_running(
    client: ControlClient, name: str, timeout: float, version: int | None = None
) -> Service:
    shown: list[str] = []

    def show(info: Service) -> None:
        if info.status == ServiceStatus.RUNNING:
            return
        text = wait_line(info, client.list_instances(name))
        if not shown or shown[-1] != text:
            output.progress(text)
            shown.append(text)

    try:
        info = client.wait_until_running(name, timeout=timeout, on_progress=show, version=version)
    except EASError as exc:
        raise output.Failed(exc.message) from None
    output.success("Service is running")
    return info
