"""The roll police: after each tick, end the rolls that finished and undo the ones that failed.

A roll is in progress while a service has a rollback point (set by `modify`, `version`: what
served before). It is over when every wanted instance of the new (version, revision) is ready
and no other is left. It failed when an instance of the new one dies (load failure, crash)
while instances of the previous one still serve: the service goes back to the rollback point
and says why; the next tick stops the new instances.

``decide`` is pure — records and observed instances in, decisions out — so every rule is
tested with plain values; ``apply`` writes each decision, only if the service still is what
the decision was made on (a user's change meanwhile wins).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import Repository, RollbackPoint, ServiceRecord
from eas_core.errors import Conflict, NotFound
from eas_core.spec.status import InstanceStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndRoll:
    """Every wanted instance of (version, revision) is ready and nothing else is left."""

    service: str
    version: int
    revision: int


@dataclass(frozen=True)
class UndoRoll:
    """An instance of (version, revision) died while the previous one still serves."""

    service: str
    version: int
    revision: int
    back: RollbackPoint
    message: str


RollDecision = EndRoll | UndoRoll


def decide(
    services: Iterable[ServiceRecord], observed: Sequence[ObservedInstance]
) -> list[RollDecision]:
    decisions = []
    for record in services:
        if record.rollback is not None and record.is_running:
            decision = _decide(record, record.rollback, observed)
            if decision is not None:
                decisions.append(decision)
    return decisions


def _decide(
    record: ServiceRecord, back: RollbackPoint, observed: Sequence[ObservedInstance]
) -> RollDecision | None:
    key = (record.current_version, record.revision)
    mine = [
        o for o in observed if o.service == record.name and o.status != InstanceStatus.TERMINATING
    ]
    current = [o for o in mine if (o.version, o.revision) == key]
    old = [o for o in mine if (o.version, o.revision) != key]
    if not old and sum(1 for o in current if o.is_ready) >= record.instance_count:
        return EndRoll(record.name, *key)
    broken = [o for o in current if o.restarts and not o.is_ready]
    if broken and any(o.is_ready for o in old):
        reason = broken[0].reason or "instance died"
        return UndoRoll(
            record.name,
            *key,
            back=back,
            message=(
                f"Rolling to version {record.current_version} failed: {reason}; "
                f"serving version {back.version}"
            ),
        )
    return None


def apply(repo: Repository, decisions: Sequence[RollDecision]) -> None:
    for decision in decisions:
        unchanged = {"current_version": decision.version, "revision": decision.revision}
        try:
            if isinstance(decision, EndRoll):
                repo.update_service(decision.service, expect=unchanged, rollback=None, message="")
            else:
                repo.update_service(
                    decision.service,
                    expect=unchanged,
                    current_version=decision.back.version,
                    revision=decision.back.revision,
                    document=decision.back.document,
                    rollback=None,
                    message=decision.message,
                )
        except (Conflict, NotFound):
            pass  # the user changed or deleted it meanwhile: the next tick decides again
        except Exception:  # one service's bad state must not stop the others' rolls
            log.exception("cannot end or undo the roll of service %s", decision.service)


class RollPolice:
    """The after-tick hook: decide over the stored services and what the tick saw, apply."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def __call__(self, snapshot: Snapshot) -> None:
        apply(self.repo, decide(self.repo.list_services(), snapshot.instances))
