"""The roll police's decisions and the clean-up's, from plain values (no processes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.cleanup import removable
from eas_core.controller.rolls import EndRoll, UndoRoll, decide
from eas_core.controller.store import RollbackPoint, ServiceRecord, ServiceState
from eas_core.spec.status import InstanceStatus

RUNNING = InstanceStatus.RUNNING
STARTING = InstanceStatus.STARTING
RESTARTING = InstanceStatus.RESTARTING
TERMINATING = InstanceStatus.TERMINATING
BACK = RollbackPoint(version=1, revision=0, document={"name": "s", "processor": "pmml"})
EPOCH = datetime(2024, 1, 1)


def service(
    name: str = "s",
    *,
    version: int = 2,
    revision: int = 0,
    instances: int = 2,
    state: ServiceState = ServiceState.RUNNING,
    rollback: RollbackPoint | None = BACK,
    related_to: str | None = None,
    **fields: Any,
) -> ServiceRecord:
    return ServiceRecord(
        name=name,
        token=None,
        state=state,
        instance_count=instances,
        current_version=version,
        latest_version=max(version, 2),
        revision=revision,
        related_to=related_to,
        weight=fields.get("weight"),
        rollback=rollback,
        message="",
        document={"name": name},
        created_at=EPOCH,
        updated_at=EPOCH,
    )


def inst(
    id: str,
    version: int,
    status: InstanceStatus = RUNNING,
    *,
    service: str = "s",
    revision: int = 0,
    restarts: int = 0,
    reason: str = "",
) -> ObservedInstance:
    return ObservedInstance(
        id=id,
        service=service,
        version=version,
        revision=revision,
        status=status,
        host="127.0.0.1",
        port=1,
        node="local",
        restarts=restarts,
        reason=reason,
    )


def test_a_roll_ends_once_every_new_instance_is_ready_and_no_old_one_is_left() -> None:
    observed = [inst("n1", 2), inst("n2", 2), inst("o1", 1, TERMINATING)]
    assert decide([service()], observed) == [EndRoll("s", 2, 0)]


def test_a_roll_goes_on_while_old_instances_serve_or_new_ones_start() -> None:
    assert decide([service()], [inst("n1", 2), inst("n2", 2), inst("o1", 1)]) == []
    assert decide([service()], [inst("n1", 2), inst("n2", 2, STARTING)]) == []


def test_a_new_instance_that_dies_while_the_old_version_serves_undoes_the_roll() -> None:
    observed = [
        inst("n1", 2, RESTARTING, restarts=1, reason="this model refuses to load"),
        inst("o1", 1),
        inst("o2", 1),
    ]
    assert decide([service()], observed) == [
        UndoRoll(
            "s",
            2,
            0,
            back=BACK,
            message=("Rolling to version 2 failed: this model refuses to load; serving version 1"),
        )
    ]


def test_a_death_without_a_reason_still_says_what_happened() -> None:
    observed = [inst("n1", 2, RESTARTING, restarts=1), inst("o1", 1)]
    [undo] = decide([service()], observed)
    assert isinstance(undo, UndoRoll)
    assert undo.message == "Rolling to version 2 failed: instance died; serving version 1"


def test_nothing_is_undone_when_no_old_instance_serves_any_more() -> None:
    observed = [inst("n1", 2, RESTARTING, restarts=1, reason="crash"), inst("o1", 1, STARTING)]
    assert decide([service()], observed) == []


def test_a_settings_roll_is_a_new_revision_of_the_same_version() -> None:
    back = RollbackPoint(version=2, revision=0, document={"name": "s"})
    record = service(revision=1, rollback=back)
    observed = [inst("n1", 2, RESTARTING, revision=1, restarts=1, reason="bad"), inst("o1", 2)]
    [undo] = decide([record], observed)
    assert isinstance(undo, UndoRoll) and (undo.version, undo.revision) == (2, 1)
    assert undo.back == back


def test_services_without_a_roll_or_not_running_are_left_alone() -> None:
    observed = [inst("n1", 2, RESTARTING, restarts=1), inst("o1", 1)]
    assert decide([service(rollback=None)], observed) == []
    assert decide([service(state=ServiceState.STOPPED)], observed) == []
    assert decide([service(state=ServiceState.DELETING)], observed) == []


def test_other_services_instances_do_not_count() -> None:
    observed = [inst("n1", 2), inst("n2", 2), inst("x", 1, service="other")]
    assert decide([service()], observed) == [EndRoll("s", 2, 0)]


def test_a_deleted_service_is_removed_once_its_last_instance_is_gone() -> None:
    deleting = service("gone", state=ServiceState.DELETING, rollback=None)
    assert removable([deleting], [inst("g1", 2, TERMINATING, service="gone")]) == []
    assert removable([deleting], []) == ["gone"]
    assert removable([service(rollback=None)], []) == []


def test_a_retired_name_stays_while_a_related_service_still_holds_it() -> None:
    retired = service("orig", state=ServiceState.RETIRED, rollback=None)
    related = service("orig_1a2b3c4d", related_to="orig", weight=100, rollback=None)
    assert removable([retired, related], []) == []
    leaving = service(
        "orig_1a2b3c4d", related_to="orig", state=ServiceState.DELETING, rollback=None
    )
    # The related service goes with its instances, the retired name with it.
    assert removable([retired, leaving], []) == ["orig", "orig_1a2b3c4d"]
