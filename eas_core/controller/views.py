"""What `ls`, `desc` and `w` show of a service: its stored record joined with what the
backend observes and what the reconciler could not do."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from eas_core.config import ControllerSettings
from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.store import Repository, ServiceRecord, ServiceState
from eas_core.spec.service import parse_description
from eas_core.spec.status import InstanceStatus, ServiceStatus

log = logging.getLogger(__name__)


def _stamp(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat(timespec="seconds")


class ServiceViews:
    """Read-only views over the store and the last observation (mixed into Services)."""

    settings: ControllerSettings
    repo: Repository
    observed: Callable[[], list[ObservedInstance]]
    failures: Callable[[], dict[str, str]]

    def instances_of(self, name: str) -> list[ObservedInstance]:
        return [o for o in self.observed() if o.service == name]

    def status_of(self, record: ServiceRecord) -> tuple[ServiceStatus, int, int, str]:
        """(status, running, pending, message) from what the backend reports."""
        mine = [o for o in self.instances_of(record.name) if o.status != InstanceStatus.TERMINATING]
        current = [
            o for o in mine if (o.version, o.revision) == (record.current_version, record.revision)
        ]
        running = sum(1 for o in current if o.is_ready)
        pending = max(record.instance_count - running, 0)
        failing = [o for o in current if o.restarts and not o.is_ready and o.reason]
        failure = self.failures().get(record.name)
        if record.state is ServiceState.DELETING:
            status = ServiceStatus.DELETING
            message = f"Terminating {len(mine)} instance(s)"
        elif record.state is ServiceState.RETIRED:
            status = ServiceStatus.DELETING
            message = "Deleted; its endpoint serves the released related service"
        elif not record.is_running:
            status = ServiceStatus.STOPPED
            message = "Service stopped" if not mine else "Stopping instances"
        elif failure is not None and running < record.instance_count:
            rolling = len(mine) > len(current)
            status = (
                ServiceStatus.FAILED
                if running == 0 and not rolling
                else ServiceStatus.UPDATING
                if rolling
                else ServiceStatus.WAITING
            )
            message = failure
        elif len(mine) > len(current):
            status = ServiceStatus.UPDATING
            # What holds the roll up (no room for the new instances, a crashing new
            # version) shows from the first tick, not only when a wait runs out.
            stuck = [
                o.reason
                for o in current
                if not o.is_ready
                and o.reason
                and (o.status == InstanceStatus.PENDING or o.restarts)
            ]
            heading = f"Rolling to version {record.current_version}"
            message = record.message or (f"{heading}: {stuck[0]}" if stuck else heading)
        elif running >= record.instance_count:
            status = ServiceStatus.RUNNING
            message = record.message or "Service start successfully"
        elif failing:
            status = ServiceStatus.FAILED if running == 0 else ServiceStatus.WAITING
            message = failing[0].reason
        else:
            status = ServiceStatus.WAITING
            waiting = [o for o in current if o.status == InstanceStatus.PENDING and o.reason]
            message = waiting[0].reason if waiting else "Waiting for instances to be ready"
        return status, running, pending, message

    def describe(self, name: str) -> dict[str, Any]:
        record = self.repo.get_service(name)
        return self.summary(record, full=True)

    def summary(self, record: ServiceRecord, *, full: bool = False) -> dict[str, Any]:
        """What `ls` (and with ``full``, `desc`) shows of one service. A stored service that
        cannot be summarised (a description from before today's checks) is shown Failed
        with the reason, so one bad row never breaks a listing."""
        try:
            return self._summary(record, full=full)
        except Exception as exc:
            log.exception("cannot summarise service %s", record.name)
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            return self._broken_summary(record, reason, full=full)

    def _broken_summary(self, record: ServiceRecord, reason: str, *, full: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ServiceName": record.name,
            "Status": str(ServiceStatus.FAILED),
            "Region": "local",
            "CreateTime": _stamp(record.created_at),
            "UpdateTime": _stamp(record.updated_at),
            "TotalInstance": record.instance_count,
            "RunningInstance": 0,
            "PendingInstance": record.instance_count,
            "CPU": 0,
            "Memory": 0,
            "GPU": 0,
            "Resource": "",
            "Weight": 0,
            "LatestVersion": record.latest_version,
            "CurrentVersion": record.current_version,
            "Message": f"the stored service is invalid: {reason}",
            "IntranetEndpoint": "",
            "InternetEndpoint": "",
        }
        if full:
            data["AccessToken"] = ""
            data["RelatedTo"] = record.related_to
            data["Released"] = False
            data["Retired"] = record.state is ServiceState.RETIRED
            data["ServiceConfig"] = record.document
        return data

    def _summary(self, record: ServiceRecord, *, full: bool = False) -> dict[str, Any]:
        status, running, pending, message = self.status_of(record)
        meta = parse_description(record.document).metadata
        endpoint = self.endpoint_of(record)
        data: dict[str, Any] = {
            "ServiceName": record.name,
            "Status": str(status),
            "Region": "local",
            "CreateTime": _stamp(record.created_at),
            "UpdateTime": _stamp(record.updated_at),
            "TotalInstance": record.instance_count,
            "RunningInstance": running,
            "PendingInstance": pending,
            "CPU": meta.cpu,
            "Memory": meta.memory_mb,
            "GPU": meta.gpu,
            "Resource": meta.resource,
            # A related service's share of its original's traffic (0 until released); an
            # original keeps what its released related services leave it.
            "Weight": self.weight_of(record),
            "LatestVersion": record.latest_version,
            "CurrentVersion": record.current_version,
            "Message": message,
            "IntranetEndpoint": endpoint,
            "InternetEndpoint": endpoint,
        }
        if full:
            data["AccessToken"] = self.token_of(record)
            data["RelatedTo"] = record.related_to
            data["Released"] = record.related_to is not None and record.weight is not None
            # Deleted while a released related service serves its endpoint: `delete --wait`
            # ends here, not when the name is gone.
            data["Retired"] = record.state is ServiceState.RETIRED
            data["ServiceConfig"] = record.document
        return data

    def weight_of(self, record: ServiceRecord) -> int:
        if record.related_to is not None:
            return record.weight or 0
        released = [
            s.weight or 0
            for s in self.repo.list_services()
            if s.related_to == record.name and s.weight is not None
        ]
        return max(100 - sum(released), 0)

    def answering_name(self, record: ServiceRecord) -> str:
        """The name whose endpoint serves this service: its own, or, once released, its
        original's — a released service's own name stops answering (SPEC, blue-green), and
        it serves its share of the original's traffic there."""
        if record.related_to is not None and record.weight is not None:
            return record.related_to
        return record.name

    def endpoint_of(self, record: ServiceRecord) -> str:
        return f"{self.settings.endpoint}/api/predict/{self.answering_name(record)}"

    def token_of(self, record: ServiceRecord) -> str:
        """The token the shown endpoint takes: a released service's is its original's."""
        name = self.answering_name(record)
        if name != record.name and (original := self.repo.find_service(name)) is not None:
            return original.token or ""
        return record.token or ""

    def workers(self, name: str) -> list[dict[str, Any]]:
        self.repo.get_service(name)
        return [
            {
                "InstanceName": o.id,
                "Node": o.node,
                "IP": o.host,
                "Port": o.port,
                "Status": str(o.status),
                "Ready": o.is_ready,
                "Restarts": o.restarts,
                "StartTime": o.started_at.isoformat(timespec="seconds") if o.started_at else "",
                "Version": o.version,
                "Reason": o.reason,
            }
            for o in sorted(self.instances_of(name), key=lambda o: o.id)
        ]
