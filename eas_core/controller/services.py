"""What the control API does to services, independent of HTTP: the domain operations.

Every operation validates first and writes once, so a refused request changes nothing. The
reconciler is poked after each change so instances follow within a tick.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from eas_core.artefacts import ArtefactCache, ArtefactStore
from eas_core.artefacts.packages import snapshot_packages
from eas_core.auth.tokens import generate_token
from eas_core.config import ControllerSettings
from eas_core.controller.backends.base import InstanceSpec, NodeInfo, ObservedInstance
from eas_core.controller.reconciler import DesiredService
from eas_core.controller.sources import SourcePolicy
from eas_core.controller.store import Repository, RollbackPoint, ServiceRecord, ServiceState
from eas_core.controller.views import ServiceViews
from eas_core.errors import BadRequest, Conflict, InvalidDescription
from eas_core.spec.instance import boot_spec, runtime_environment
from eas_core.spec.service import (
    MAX_SERVICE_NAME,
    RELATED_SUFFIX_CHARS,
    ServiceDescription,
    changes_version,
    merge_documents,
    parse_description,
)
from eas_core.spec.status import InstanceStatus
from processors import registry

log = logging.getLogger(__name__)


class Services(ServiceViews):
    def __init__(
        self,
        settings: ControllerSettings,
        repo: Repository,
        store: ArtefactStore,
        nodes: Callable[[], list[NodeInfo]],
        observed: Callable[[], list[ObservedInstance]],
        poke: Callable[[], None],
        failures: Callable[[], dict[str, str]] = dict,
        sources: SourcePolicy | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.store = store
        self.nodes = nodes
        self.observed = observed
        self.poke = poke
        self.failures = failures  # service → why the reconciler cannot act on it
        self.sources = sources or SourcePolicy.from_settings(settings)

    # -- checks ------------------------------------------------------------------------
    def check(self, description: ServiceDescription) -> None:
        """What pydantic cannot know: processor codes, resource groups, node sizes."""
        errors = []
        if description.processor and (refused := registry.refusal(description.processor)):
            errors.append(refused)
        if (
            description.processor_type
            and description.processor_type not in registry.CUSTOM_TYPES_SUPPORTED
        ):
            errors.append(
                f"processor_type: {description.processor_type!r} processors are not supported by "
                f"this installation (supported: {', '.join(registry.CUSTOM_TYPES_SUPPORTED)})"
            )
        if description.data_image:
            errors.append("data_image: the local backend runs processes, not container images")
        meta = description.metadata
        everywhere = self.nodes()
        groups = sorted({n.group for n in everywhere})
        nodes = [n for n in everywhere if n.group == meta.resource]
        if not nodes:
            errors.append(
                f"metadata.resource: no resource group {meta.resource!r} "
                f"(have: {', '.join(groups) or 'none'})"
            )
            raise InvalidDescription(errors)
        group = f"of group {meta.resource!r}"
        if not any(n.cpu >= meta.cpu for n in nodes):
            errors.append(
                f"metadata.cpu: {meta.cpu:g} cores per instance is more than any node {group} "
                f"has ({max(n.cpu for n in nodes):g})"
            )
        if not any(n.memory_mb >= meta.memory_mb for n in nodes):
            errors.append(
                f"metadata.memory: {meta.memory_mb} MB per instance is more than any node "
                f"{group} has ({max(n.memory_mb for n in nodes)} MB)"
            )
        if meta.gpu and not any(n.gpu >= meta.gpu for n in nodes):
            errors.append(
                f"metadata.gpu: {meta.gpu} GPUs per instance, but no node {group} has that many"
            )
        if description.processor and registry.requires_gpu(description.processor):
            if not any(n.gpu for n in nodes):
                errors.append(
                    f"processor: {description.processor!r} runs on a GPU, and no node {group} "
                    f"has one (use its CPU code)"
                )
            elif not meta.gpu:
                errors.append(f"metadata.gpu: {description.processor!r} needs at least 1 GPU")
        if errors:
            raise InvalidDescription(errors)

    def snapshot(self, description: ServiceDescription) -> dict[str, Any]:
        """Copy model and processor packages into the artefact store, so every version stays
        restorable whatever happens to the source later; each is unpacked into the node's
        cache once now, so an archive that cannot be unpacked safely is refused here."""
        return snapshot_packages(
            description,
            self.store,
            max_bytes=self.settings.max_artefact_bytes,
            cache=ArtefactCache(
                self.settings.cache_dir, max_bytes=self.settings.max_artefact_bytes
            ),
            guard=self.sources,
        )

    # -- operations ---------------------------------------------------------------------
    def create(self, document: Any, *, related: bool = False) -> ServiceRecord:
        description = parse_description(document)
        name = description.name
        related_to = None
        if related:
            original = self.repo.get_service(name)
            self._require_active(original, "create -r")
            if original.related_to:
                raise Conflict(f"name: {name!r} is itself a related service")
            longest = MAX_SERVICE_NAME - RELATED_SUFFIX_CHARS
            if len(name) > longest:
                raise InvalidDescription(
                    [
                        f"name: a related service is named '<name>_<8 hex digits>', so "
                        f"`create -r` takes a name of at most {longest} characters; "
                        f"{name!r} has {len(name)}"
                    ]
                )
            related_to = name
            name = f"{name}_{secrets.token_hex(4)}"
            document = {**document, "name": name}
            # Validate what is stored, not what was sent: nothing is written unless it passes.
            description = parse_description(document)
        elif (existing := self.repo.find_service(name)) is not None:
            if existing.state is ServiceState.DELETING:
                raise Conflict(f"name: service {name!r} is still being deleted; retry shortly")
            raise Conflict(f"name: a service named {name!r} already exists")
        self.check(description)
        self.sources.check_description(description)
        artefacts = self.snapshot(description)
        token = description.token or (generate_token() if description.generate_token else None)
        record = self.repo.create_service(
            name=name,
            token=token,
            instance_count=description.metadata.instance,
            document=document,
            artefacts=artefacts,
            related_to=related_to,
        )
        self.poke()
        return record

    def modify(self, name: str, change: Any) -> ServiceRecord:
        """`modify -s` / `modify -D`: a model or processor change makes a new version."""
        if not isinstance(change, dict) or not change:
            raise BadRequest("modify: the change must be a non-empty JSON object")
        record = self.repo.get_service(name)
        self._require_active(record, "modify")
        if "name" in change and change["name"] != name:
            raise InvalidDescription([f"name: cannot rename service {name!r}"])
        merged = merge_documents(record.document, change)
        merged["name"] = name
        description = parse_description(merged)
        self.check(description)
        token_changes: dict[str, Any] = {}
        if "token" in change or "generate_token" in change:
            token_changes["token"] = description.token or (
                record.token or generate_token() if description.generate_token else None
            )
        if changes_version(record.document, change):
            self.sources.check_description(description)
            artefacts = self.snapshot(description)
            record = self.repo.add_version(
                name, merged, artefacts, make_current=True, rollback=self.rollback_point(record)
            )
            if token_changes:
                record = self.repo.update_service(name, **token_changes)
        else:
            only_scale = set(change) == {"metadata"} and set(change["metadata"]) == {"instance"}
            updates: dict[str, Any] = {
                "document": merged,
                "instance_count": description.metadata.instance,
                "message": "",
                **token_changes,
            }
            if not only_scale:
                updates["revision"] = record.revision + 1  # restart instances with new settings
                updates["rollback"] = self.rollback_point(record)
            record = self.repo.update_service(name, **updates)
        self.poke()
        return record

    def rollback_point(self, record: ServiceRecord) -> RollbackPoint | None:
        """What a failing roll returns to: the state that serves now (None if nothing does)."""
        if record.rollback is not None:
            return record.rollback  # a roll over a roll still returns to what really served
        serving = [
            o
            for o in self.instances_of(record.name)
            if o.is_ready and (o.version, o.revision) == (record.current_version, record.revision)
        ]
        if not serving:
            return None
        return RollbackPoint(record.current_version, record.revision, record.document)

    def switch_version(self, name: str, version: int) -> ServiceRecord:
        """`eascmd version NAME V`: roll to a stored version, keeping the instance count."""
        record = self.repo.get_service(name)
        self._require_active(record, "version")
        if version == record.current_version and record.rollback is None:
            return record
        target = self.repo.get_version(name, version)
        document = merge_documents(
            target.document, {"metadata": {"instance": record.instance_count}}
        )
        description = parse_description(document)
        self.check(description)
        # Nothing is fetched (the version's snapshot is in the store), but a version made
        # before the allow-list existed must not bring back what it now refuses.
        self.sources.check_description(description, fetching=False)
        record = self.repo.update_service(
            name,
            current_version=version,
            document=document,
            rollback=self.rollback_point(record),
            message="",
        )
        self.poke()
        return record

    def release(self, name: str, weight: int) -> ServiceRecord:
        """`eascmd release NEW -w W`: W% of the original endpoint's traffic goes to NEW."""
        if not 0 <= weight <= 100:
            raise BadRequest(f"weight: must be between 0 and 100, got {weight}")
        record = self.repo.get_service(name)
        if record.related_to is None:
            raise BadRequest(
                f"name: {name!r} is not a related service (create one with `eascmd create -r`)"
            )
        self._require_active(record, "release")
        siblings = [
            s
            for s in self.repo.list_services()
            if s.related_to == record.related_to and s.name != name and s.weight
        ]
        if weight + sum(s.weight or 0 for s in siblings) > 100:
            raise BadRequest(f"weight: related services of {record.related_to!r} would exceed 100%")
        record = self.repo.update_service(name, weight=weight)
        self.poke()
        return record

    def check_rolls(self, observed: list[ObservedInstance]) -> None:
        """Called after each tick: end finished rolls, undo failed ones.

        A roll fails when an instance of the new version dies (load failure, crash) while
        instances of the previous one still serve: the service goes back to the previous
        version and says why; the new instances are stopped by the next tick.
        """
        for record in self.repo.list_services():
            if record.rollback is None or not record.is_running:
                continue
            try:
                self._check_roll(record, observed)
            except Conflict:
                pass  # the user changed it meanwhile: next tick
            except Exception:  # one service's bad state must not stop the others' rolls
                log.exception("cannot check the roll of service %s", record.name)

    def _check_roll(self, record: ServiceRecord, observed: list[ObservedInstance]) -> None:
        back = record.rollback
        assert back is not None
        key = (record.current_version, record.revision)
        unchanged = {"current_version": record.current_version, "revision": record.revision}
        mine = [
            o
            for o in observed
            if o.service == record.name and o.status != InstanceStatus.TERMINATING
        ]
        current = [o for o in mine if (o.version, o.revision) == key]
        old = [o for o in mine if (o.version, o.revision) != key]
        if not old and sum(1 for o in current if o.is_ready) >= record.instance_count:
            self.repo.update_service(record.name, expect=unchanged, rollback=None, message="")
            return
        broken = [o for o in current if o.restarts and not o.is_ready]
        if broken and any(o.is_ready for o in old):
            reason = broken[0].reason or "instance died"
            self.repo.update_service(
                record.name,
                expect=unchanged,
                current_version=back.version,
                revision=back.revision,
                document=back.document,
                rollback=None,
                message=(
                    f"Rolling to version {record.current_version} failed: {reason}; "
                    f"serving version {back.version}"
                ),
            )

    def _require_active(self, record: ServiceRecord, operation: str) -> None:
        """Refuse changes to a service on its way out: the reconciler is stopping its
        instances, and a change would start them again or race the removal."""
        if record.state is ServiceState.DELETING:
            raise Conflict(
                f"{operation}: service {record.name!r} is in state Deleting; it cannot be "
                f"changed (create it again once it is gone)"
            )
        if record.state is ServiceState.RETIRED:
            raise Conflict(
                f"{operation}: service {record.name!r} is deleted (retired): its endpoint "
                f"serves its released related service, which is the one to change"
            )

    def stop(self, name: str) -> ServiceRecord:
        self._require_active(self.repo.get_service(name), "stop")
        record = self.repo.update_service(name, state=ServiceState.STOPPED)
        self.poke()
        return record

    def start(self, name: str) -> ServiceRecord:
        self._require_active(self.repo.get_service(name), "start")
        record = self.repo.update_service(name, state=ServiceState.RUNNING)
        self.poke()
        return record

    def delete(self, name: str) -> ServiceRecord:
        """Mark for deletion: the route disappears now, the record once no instance is left.

        An original service whose related service was released keeps its name and token
        ("retired"): its endpoint now sends everything to the related service.
        """
        record = self.repo.get_service(name)
        if record.state is ServiceState.RETIRED:
            raise Conflict(
                f"service {name!r} is already deleted; its endpoint serves "
                f"its released related service"
            )
        released = [
            s for s in self.repo.list_services() if s.related_to == name and s.weight is not None
        ]
        record = self.repo.update_service(
            name, state=ServiceState.RETIRED if released else ServiceState.DELETING
        )
        self.poke()
        return record

    def collect_deleted(self, observed: list[ObservedInstance]) -> None:
        """Called after each tick: drop deleted services whose instances are all gone, and
        retired names whose related services are all gone too."""
        remaining = {o.service for o in observed}
        services = self.repo.list_services()
        related_to = {s.related_to for s in services if s.state is not ServiceState.DELETING}
        for record in services:
            gone = record.state is ServiceState.DELETING and record.name not in remaining
            orphaned = record.state is ServiceState.RETIRED and record.name not in related_to
            if gone or orphaned:
                try:
                    self.repo.delete_service(record.name)
                except Exception:  # the others are still collected
                    log.exception("cannot remove deleted service %s", record.name)

    # -- what runs ---------------------------------------------------------------------
    def desired(self) -> list[DesiredService]:
        return [
            DesiredService(
                name=s.name,
                running=s.is_running,
                version=s.current_version,
                revision=s.revision,
                instances=s.instance_count,
            )
            for s in self.repo.list_services()
        ]

    def instance_spec(
        self, service: str, version: int, revision: int, instance_id: str
    ) -> InstanceSpec:
        record = self.repo.get_service(service)
        version_record = self.repo.get_version(service, version)
        document = record.document if version == record.current_version else version_record.document
        description = parse_description({**document, "name": service})
        meta = description.metadata
        boot = boot_spec(description, version=version, artefacts=version_record.artefacts)
        env = runtime_environment(
            description,
            version=version,
            token=record.token,
            max_body_bytes=self.settings.max_body_bytes,
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
        )
