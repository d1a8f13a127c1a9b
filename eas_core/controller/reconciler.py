"""The reconciler: make what runs match what is wanted, one idempotent tick at a time.

``plan(desired, observed)`` is pure — plain values in, actions out — so every rule is tested
without processes. ``Reconciler.tick`` observes the backend, plans, applies the actions
through the backend, then hands what it saw (a :class:`Snapshot`) to each of its
``after_tick`` hooks: ending or undoing rolls, collecting deleted services, publishing the
route table — and whatever joins later (monitoring, alerts, autoscaling) without editing this
loop. Each hook runs on its own: one that fails is logged, and the others still run. A tick
repeated after a controller restart plans the same actions against the same world, so
nothing is started twice.

Failures are contained per service: an action that fails (a stored description no instance
can be started from, a backend error) marks that service failed with the reason, which
``desc`` and ``ls`` show, and the tick goes on with every other service and still publishes.

Rolling rule (SPEC §10): instances of the wanted (version, revision) are started first; an
old instance is stopped only while enough new ones are ready to keep the wanted count
serving, so traffic never drops below it during a roll.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eas_core.controller.backends.base import Backend, InstanceSpec, ObservedInstance
from eas_core.spec.status import InstanceStatus

# Seconds between ticks while an instance is starting (the setting's interval otherwise).
STARTING_INTERVAL = 0.1

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesiredService:
    name: str
    running: bool
    version: int
    revision: int
    instances: int


@dataclass(frozen=True)
class Place:
    service: str
    version: int
    revision: int


@dataclass(frozen=True)
class Stop:
    instance: str
    why: str


def _reason(action: Place | Stop, exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(action, Place):
        return f"cannot start instances: {message}"
    return f"cannot stop instance {action.instance}: {message}"


Action = Place | Stop


@dataclass(frozen=True)
class Snapshot:
    """What one tick saw: every instance the backend reports (after the tick's actions), and
    service name → why the tick could not act on it. Never changed once made; the API reads
    the latest one while the next tick runs."""

    instances: list[ObservedInstance] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


Hook = Callable[[Snapshot], None]


def _hook_name(hook: Hook) -> str:
    name: str | None = getattr(hook, "__qualname__", None)
    return name or type(hook).__qualname__


def _stop_order(instance: ObservedInstance) -> tuple[int, int, str]:
    # Stop what serves nothing first, then the most troubled, then the youngest.
    return (1 if instance.is_ready else 0, -instance.restarts, instance.id)


def plan(desired: list[DesiredService], observed: list[ObservedInstance]) -> list[Action]:
    actions: list[Action] = []
    live = [o for o in observed if o.status != InstanceStatus.TERMINATING]
    by_service: dict[str, list[ObservedInstance]] = {}
    for instance in live:
        by_service.setdefault(instance.service, []).append(instance)
    wanted = {d.name for d in desired}
    for name, instances in by_service.items():
        if name not in wanted:
            actions += [Stop(i.id, "service deleted") for i in instances]
    for service in desired:
        mine = by_service.get(service.name, [])
        if not service.running:
            actions += [Stop(i.id, "service stopped") for i in mine]
            continue
        key = (service.version, service.revision)
        current = [i for i in mine if (i.version, i.revision) == key]
        old = [i for i in mine if (i.version, i.revision) != key]
        missing = service.instances - len(current)
        actions += [Place(service.name, service.version, service.revision)] * max(missing, 0)
        if missing < 0:
            surplus = sorted(current, key=_stop_order)[:-missing]
            actions += [Stop(i.id, "scaled down") for i in surplus]
            current = [i for i in current if i not in surplus]
        ready_current = sum(1 for i in current if i.is_ready)
        old_ready = [i for i in old if i.is_ready]
        actions += [Stop(i.id, "replaced by a new version") for i in old if not i.is_ready]
        # Keep enough old ready instances that ready ones never fall below the wanted count.
        can_stop = max(0, ready_current + len(old_ready) - service.instances)
        if ready_current >= service.instances:
            can_stop = len(old_ready)
        # New instances waiting for room on a full node: make room one old instance at a
        # time, never the last one serving, rather than wait forever.
        waiting_for_room = sum(1 for i in current if i.status == InstanceStatus.PENDING)
        if waiting_for_room and can_stop == 0 and ready_current + len(old_ready) > 1:
            can_stop = 1
        for instance in sorted(old_ready, key=_stop_order)[:can_stop]:
            actions.append(Stop(instance.id, "replaced by a new version"))
    return actions


class Reconciler:
    """Runs ``tick`` in a thread; never lets an exception end the loop, and never lets one
    service's failure stop the others (see ``Snapshot.failures``)."""

    def __init__(
        self,
        backend: Backend,
        desired: Callable[[], list[DesiredService]],
        spec_for: Callable[[str, int, int, str], InstanceSpec],
        interval: float,
        after_tick: Sequence[Hook] = (),
    ) -> None:
        self.backend = backend
        self.desired = desired
        self.spec_for = spec_for
        self.after_tick = list(after_tick)
        self.interval = interval
        # Replaced whole by each tick. Its failures are rebuilt every tick, so a service that
        # was fixed, stopped or deleted leaves them at the next tick.
        self.snapshot = Snapshot()
        self.lock = threading.Lock()  # one tick at a time
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="eas-reconciler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=10)

    def poke(self) -> None:
        """Run the next tick now (after a change through the API)."""
        self.wake.set()

    def latest(self) -> Snapshot:
        """What the last tick saw."""
        return self.snapshot

    def tick(self) -> Snapshot:
        with self.lock:
            desired = self.desired()
            observed = self.backend.observe()
            actions = plan(desired, observed)
            owner = {o.id: o.service for o in observed}
            failures: dict[str, str] = {}
            for action in actions:
                service = action.service if isinstance(action, Place) else owner[action.instance]
                if service in failures:
                    continue  # its first failure this tick says it all
                try:
                    self._apply(action)
                except Exception as exc:  # one service's failure must not stop the others
                    failures[service] = _reason(action, exc)
                    if self.snapshot.failures.get(service) != failures[service]:
                        log.exception("service %s: %s failed", service, type(action).__name__)
            if actions:
                observed = self.backend.observe()
            snapshot = self.snapshot = Snapshot(observed, failures)
            for hook in self.after_tick:
                try:
                    hook(snapshot)
                except Exception:  # a failing roll check must not keep routes stale
                    log.exception("after-tick hook %s failed", _hook_name(hook))
            return snapshot

    def _apply(self, action: Action) -> None:
        if isinstance(action, Place):
            instance_id = f"{action.service}-{action.version}-{secrets.token_hex(4)}"
            spec = self.spec_for(action.service, action.version, action.revision, instance_id)
            self.backend.place(spec)
        else:
            log.info("stopping instance %s: %s", action.instance, action.why)
            self.backend.stop(action.instance)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            interval = self.interval
            try:
                snapshot = self.tick()
            except Exception:  # a bad tick must not end reconciliation
                log.exception("reconcile tick failed")
            else:
                # An instance starting is probed more often, so it serves (and its service
                # reads Running) as soon as it is ready rather than up to a tick later.
                if any(o.status == InstanceStatus.STARTING for o in snapshot.instances):
                    interval = min(interval, STARTING_INTERVAL)
            self.wake.wait(interval)
            self.wake.clear()
