"""What `ls`, `desc`, `w` and `versions` show of a service, as the typed shapes of
eas_core.spec.control: its stored record joined with what the backend observes and what the
reconciler could not do."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from eas_core.config import ControllerSettings
from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.store import Repository, ServiceRecord, ServiceState, VersionRecord
from eas_core.spec.control import (
    Instance,
    Service,
    ServiceSummary,
    Version,
    VersionArtefact,
)
from eas_core.spec.service import parse_description
from eas_core.spec.status import InstanceStatus, ServiceStatus

log = logging.getLogger(__name__)


# One region: the installation's own machines.
REGION = "local"


class ServiceViews:
    """Read-only views over the store and the last observation (mixed into Services)."""

    settings: ControllerSettings
    repo: Repository
    observed: Callable[[], list[ObservedInstance]]
    failures: Callable[[], dict[str, str]]
    # Instance id → its GPU values at the collector's last round (none for one on no GPU).
    gpu_use: Callable[[], Mapping[str, Mapping[str, float]]]

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

    def describe(self, name: str) -> Service:
        return self.service(self.repo.get_service(name))

    def summary(self, record: ServiceRecord) -> ServiceSummary:
        """What `ls` shows of one service. A stored service that cannot be summarised (a
        description from before today's checks) is shown Failed with the reason, so one bad
        row never breaks a listing."""
        try:
            return self._summary(record)
        except Exception as exc:
            return self._broken_summary(record, self._cannot_summarise(record, exc))

    def service(self, record: ServiceRecord) -> Service:
        """What `desc` shows of one service (and what every change of it answers)."""
        try:
            summary = self._summary(record)
        except Exception as exc:
            summary = self._broken_summary(record, self._cannot_summarise(record, exc))
            token, released = "", False
        else:
            token = self.token_of(record)
            released = record.related_to is not None and record.weight is not None
        return Service(
            **dict(summary),
            access_token=token,
            related_to=record.related_to,
            released=released,
            # Deleted while a released related service serves its endpoint: `delete --wait`
            # ends here, not when the name is gone.
            retired=record.state is ServiceState.RETIRED,
            service_config=record.document,
        )

    @staticmethod
    def _cannot_summarise(record: ServiceRecord, exc: Exception) -> str:
        log.exception("cannot summarise service %s", record.name)
        return getattr(exc, "message", None) or str(exc) or type(exc).__name__

    def _broken_summary(self, record: ServiceRecord, reason: str) -> ServiceSummary:
        return ServiceSummary(
            service_name=record.name,
            status=ServiceStatus.FAILED,
            region=REGION,
            create_time=record.created_at,
            update_time=record.updated_at,
            total_instance=record.instance_count,
            running_instance=0,
            pending_instance=record.instance_count,
            cpu=0,
            memory=0,
            gpu=0,
            resource="",
            weight=0,
            latest_version=record.latest_version,
            current_version=record.current_version,
            message=f"the stored service is invalid: {reason}",
            intranet_endpoint="",
            internet_endpoint="",
        )

    def _summary(self, record: ServiceRecord) -> ServiceSummary:
        status, running, pending, message = self.status_of(record)
        meta = parse_description(record.document).metadata
        endpoint = self.endpoint_of(record)
        return ServiceSummary(
            service_name=record.name,
            status=status,
            region=REGION,
            create_time=record.created_at,
            update_time=record.updated_at,
            total_instance=record.instance_count,
            running_instance=running,
            pending_instance=pending,
            cpu=meta.cpu,
            memory=meta.memory_mb,
            gpu=meta.gpu,
            resource=meta.resource,
            # A related service's share of its original's traffic (0 until released); an
            # original keeps what its released related services leave it.
            weight=self.weight_of(record),
            latest_version=record.latest_version,
            current_version=record.current_version,
            message=message,
            intranet_endpoint=endpoint,
            internet_endpoint=endpoint,
        )

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

    def workers(self, name: str) -> list[Instance]:
        self.repo.get_service(name)
        use = self.gpu_use()
        return [
            Instance(
                instance_name=o.id,
                node=o.node,
                ip=o.host,
                port=o.port,
                status=o.status,
                ready=o.is_ready,
                restarts=o.restarts,
                start_time=o.started_at,
                version=o.version,
                reason=o.reason,
                gpus=",".join(map(str, o.gpus)),
                gpu_memory_mb=use.get(o.id, {}).get("gpu_memory_mb", 0.0),
                gpu_util=use.get(o.id, {}).get("gpu_util", 0.0),
            )
            for o in sorted(self.instances_of(name), key=lambda o: o.id)
        ]

    def versions(self, name: str) -> list[Version]:
        self.repo.get_service(name)
        return [version_view(v) for v in self.repo.list_versions(name)]

    def version(self, name: str, version: int) -> Version:
        return version_view(self.repo.get_version(name, version))


def version_view(record: VersionRecord) -> Version:
    """One stored version as `versions` and `desc --version` show it."""
    return Version(
        version=record.version,
        create_time=record.created_at,
        service_config=record.document,
        artefacts={
            kind: VersionArtefact.model_validate(ref) for kind, ref in record.artefacts.items()
        },
    )
