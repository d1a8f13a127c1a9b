"""What the control API does to services, independent of HTTP: create, modify, switch
version, release, stop, start, delete.

Every operation validates first (the description, then ``checks``: what pydantic cannot know)
and writes once, so a refused request changes nothing. The reconciler is poked after each
change so instances follow within a tick. What the API shows of a service comes from
``ServiceViews``, over the reconciler's latest snapshot.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from eas_core.artefacts import ArtefactCache, ArtefactStore
from eas_core.artefacts.packages import snapshot_packages
from eas_core.auth.tokens import generate_token
from eas_core.config import ControllerSettings
from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.checks import Checks
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import Repository, RollbackPoint, ServiceRecord, ServiceState
from eas_core.controller.views import ServiceViews
from eas_core.errors import BadRequest, Conflict, InvalidDescription
from eas_core.spec.service import (
    MAX_SERVICE_NAME,
    RELATED_SUFFIX_CHARS,
    ServiceDescription,
    changes_version,
    keep_resources,
    merge_documents,
    parse_description,
)


class Operations(ServiceViews):
    def __init__(
        self,
        settings: ControllerSettings,
        repo: Repository,
        store: ArtefactStore,
        checks: Checks,
        *,
        snapshot: Callable[[], Snapshot],
        poke: Callable[[], None],
        gpu_use: Callable[[], Mapping[str, Mapping[str, float]]] = dict,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.store = store
        self.checks = checks
        self.latest = snapshot  # what the reconciler saw last
        self.poke = poke  # run the next tick now
        self.gpu_use = gpu_use

    def observed(self) -> list[ObservedInstance]:
        return self.latest().instances

    def failures(self) -> dict[str, str]:
        """Service → why the reconciler cannot act on it."""
        return self.latest().failures

    def _snapshot(self, description: ServiceDescription) -> dict[str, Any]:
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
            guard=self.checks.sources,
        )

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
        self.checks.check(description)
        self.checks.check_sources(description)
        artefacts = self._snapshot(description)
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
        self.checks.check(description)
        token_changes: dict[str, Any] = {}
        if "token" in change or "generate_token" in change:
            token_changes["token"] = description.token or (
                record.token or generate_token() if description.generate_token else None
            )
        if changes_version(record.document, change):
            self.checks.check_sources(description)
            artefacts = self._snapshot(description)
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

    def switch_version(
        self, name: str, version: int, *, with_resources: bool = False
    ) -> ServiceRecord:
        """`eascmd version NAME V`: roll to a stored version's model, processor and config.
        The resource and capacity settings changed since (``RESOURCE_SETTINGS``) stay as they
        are now; ``with_resources`` brings back the version's own, except its instance count:
        a rollback never rescales."""
        record = self.repo.get_service(name)
        self._require_active(record, "version")
        if version == record.current_version and record.rollback is None and not with_resources:
            return record
        target = self.repo.get_version(name, version)
        if with_resources:
            document = merge_documents(
                target.document, {"metadata": {"instance": record.instance_count}}
            )
        else:
            document = keep_resources(target.document, record.document)
        description = parse_description(document)
        self.checks.check(description)
        # Nothing is fetched (the version's snapshot is in the store), but a version made
        # before the allow-list existed must not bring back what it now refuses.
        self.checks.check_sources(description, fetching=False)
        same = version == record.current_version
        record = self.repo.update_service(
            name,
            current_version=version,
            document=document,
            # The same version with other resources: its instances restart with them.
            revision=record.revision + 1 if same else record.revision,
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
