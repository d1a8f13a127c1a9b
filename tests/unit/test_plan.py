"""The reconciler's decisions, from plain values (no processes)."""

from __future__ import annotations

from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.reconciler import DesiredService, Place, Stop, plan
from eas_core.spec.status import InstanceStatus

RUNNING = InstanceStatus.RUNNING
STARTING = InstanceStatus.STARTING


def inst(
    id: str,
    service: str = "s",
    version: int = 1,
    status: InstanceStatus = RUNNING,
    restarts: int = 0,
    revision: int = 0,
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
    )


def want(
    instances: int = 2, version: int = 1, running: bool = True, revision: int = 0
) -> DesiredService:
    return DesiredService("s", running, version, revision, instances)


def test_places_missing_instances() -> None:
    assert plan([want(2)], [inst("a")]) == [Place("s", 1, 0)]


def test_nothing_to_do_when_matching() -> None:
    assert plan([want(2)], [inst("a"), inst("b")]) == []


def test_plan_is_idempotent_while_instances_start() -> None:
    observed = [inst("a", status=STARTING), inst("b", status=STARTING)]
    assert plan([want(2)], observed) == []


def test_scale_down_stops_not_ready_first() -> None:
    observed = [inst("a"), inst("b", status=STARTING), inst("c")]
    assert plan([want(2)], observed) == [Stop("b", "scaled down")]


def test_roll_keeps_old_until_new_are_ready() -> None:
    observed = [
        inst("a"),
        inst("b"),
        inst("n1", version=2, status=STARTING),
        inst("n2", version=2, status=STARTING),
    ]
    assert plan([want(2, version=2)], observed) == []


def test_roll_stops_old_as_new_become_ready() -> None:
    observed = [inst("a"), inst("b"), inst("n1", version=2), inst("n2", version=2, status=STARTING)]
    assert plan([want(2, version=2)], observed) == [Stop("a", "replaced by a new version")]


def test_roll_starts_new_instances() -> None:
    assert plan([want(2, version=2)], [inst("a"), inst("b")]) == [Place("s", 2, 0)] * 2


def test_settings_change_rolls_by_revision() -> None:
    observed = [inst("a"), inst("n", revision=1)]
    assert plan([want(1, revision=1)], observed) == [Stop("a", "replaced by a new version")]


def test_stopped_and_deleted_services_lose_their_instances() -> None:
    assert plan([want(2, running=False)], [inst("a")]) == [Stop("a", "service stopped")]
    assert plan([], [inst("a", service="gone")]) == [Stop("a", "service deleted")]


def test_terminating_instances_are_left_alone() -> None:
    observed = [inst("a", status=InstanceStatus.TERMINATING)]
    assert plan([want(1)], observed) == [Place("s", 1, 0)]


def test_roll_on_a_full_node_frees_room_one_instance_at_a_time() -> None:
    pending = InstanceStatus.PENDING
    observed = [
        inst("a"),
        inst("b"),
        inst("n1", version=2, status=pending),
        inst("n2", version=2, status=pending),
    ]
    assert plan([want(2, version=2)], observed) == [Stop("a", "replaced by a new version")]
    # With a single instance there is nothing to spare: keep it serving.
    assert plan([want(1, version=2)], [inst("a"), inst("n1", version=2, status=pending)]) == []
