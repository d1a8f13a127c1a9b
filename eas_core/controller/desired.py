"""Desired state as the reconciler reads it: which instances of which services should run, and
the instance spec of one (service, version, revision)."""

from __future__ import annotations

from collections.abc import Iterable

from eas_core.controller.backends.base import InstanceSpec
from eas_core.controller.reconciler import DesiredService
from eas_core.controller.store import Repository, ServiceRecord
from eas_core.spec.instance import boot_spec, runtime_environment
from eas_core.spec.service import parse_description


def desired_services(records: Iterable[ServiceRecord]) -> list[DesiredService]:
    """A service stopped, being deleted or retired wants no instance."""
    return [
        DesiredService(
            name=s.name,
            running=s.is_running,
            version=s.current_version,
            revision=s.revision,
            instances=s.instance_count,
        )
        for s in records
    ]


class DesiredState:
    def __init__(self, repo: Repository, *, max_body_bytes: int) -> None:
        self.repo = repo
        self.max_body_bytes = max_body_bytes

    def services(self) -> list[DesiredService]:
        return desired_services(self.repo.list_services())

    def instance_spec(
        self, service: str, version: int, revision: int, instance_id: str
    ) -> InstanceSpec:
        """What an instance of ``version`` runs. The current version runs the service's
        effective document (later settings changes applied); any other its own stored one."""
        record = self.repo.get_service(service)
        version_record = self.repo.get_version(service, version)
        document = record.document if version == record.current_version else version_record.document
        description = parse_description({**document, "name": service})
        meta = description.metadata
        boot = boot_spec(description, version=version, artefacts=version_record.artefacts)
        env = runtime_environment(
            description, version=version, token=record.token, max_body_bytes=self.max_body_bytes
        )
        return InstanceSpec(
            id=instance_id,
            service=service,
            version=version,
            revision=revision,
            boot=boot.model_dump(mode="json"),
            env=env,
            cpu=meta.cpu,
            memory_mb=meta.memory_mb,
            gpu=meta.gpu,
            group=meta.resource,
        )
