"""Autoscaling (SPEC §11): an after-tick hook that sets each ruled service's instance count
from its collected series.

``decide`` is pure. Up: as many instances as the latest point needs, at once. Down: only once
the last change is a cool-down old, and only to what the highest point of that cool-down
needs, so a dip does not shed instances a returning load wants. Never below the rule's
minimum or above its maximum, never while a roll is in progress, never on stale or missing
points. Each change is written as the user's own `modify -Dmetadata.instance=N` would be
(count and document, no roll), guarded against a change a user made meanwhile, and recorded
as an event with its reason.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eas_core.config import ControllerSettings
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import (
    FINE,
    Repository,
    ScaleRuleRecord,
    ScalingStore,
    SeriesStore,
    ServiceRecord,
)
from eas_core.errors import Conflict, NotFound

log = logging.getLogger(__name__)

# The series each kind of rule reads: the whole service's (sum over its instances).
SERIES = {"qps": "rps", "cpu": "cpu_cores", "queue": "queue"}
EVENT_KIND = "Autoscale"


@dataclass(frozen=True)
class Decision:
    count: int
    reason: str


def needed(rule: ScaleRuleRecord, value: float, cpu_per_instance: float) -> int:
    """Instances that bring ``value`` (the service's total) to the rule's target each."""
    # A cpu rule's target is in % of one instance's metadata.cpu.
    load = value / cpu_per_instance * 100 if rule.metric == "cpu" else value
    count = math.ceil(load / rule.target - 1e-9)
    return min(max(count, rule.min_instances), rule.max_instances)


def _describe(rule: ScaleRuleRecord, value: float, current: int) -> str:
    unit = {"qps": "requests/s", "cpu": "CPU cores", "queue": "queued requests"}[rule.metric]
    target = f"{rule.target:g}%" if rule.metric == "cpu" else f"{rule.target:g}"
    return f"{value:.1f} {unit} on {current} instance(s), target {target} per instance"


def decide(
    rule: ScaleRuleRecord,
    current: int,
    points: Sequence[tuple[float, float]],
    *,
    now: float,
    cooldown: float,
    cpu_per_instance: float,
) -> Decision | None:
    """The count to set, or None to leave it. ``points`` are the service's (time, value) of
    the rule's series over the last cool-down, oldest first, and fresh."""
    if current < rule.min_instances:
        return Decision(rule.min_instances, f"below the minimum of {rule.min_instances}")
    if current > rule.max_instances:
        return Decision(rule.max_instances, f"above the maximum of {rule.max_instances}")
    if not points:
        return None
    latest = points[-1][1]
    up = needed(rule, latest, cpu_per_instance)
    if up > current:
        return Decision(up, _describe(rule, latest, current))
    if rule.changed_at is not None and now - rule.changed_at < cooldown:
        return None
    highest = max(value for _, value in points)
    down = needed(rule, highest, cpu_per_instance)
    if down < current:
        return Decision(
            down, f"at most {_describe(rule, highest, current)} over the last {cooldown:g} s"
        )
    return None


class Autoscaler:
    def __init__(
        self,
        settings: ControllerSettings,
        repo: Repository,
        scaling: ScalingStore,
        series: SeriesStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.scaling = scaling
        self.series = series
        self.clock = clock
        self.last_run = 0.0

    def __call__(self, snapshot: Snapshot) -> None:
        now = self.clock()
        # New points come once per collection: deciding more often would decide the same.
        if now - self.last_run < self.settings.metrics_interval:
            return
        self.last_run = now
        for rule in self.scaling.rules():
            try:
                self.scale(rule, now)
            except Exception:  # one service's trouble must not stop the others
                log.exception("autoscaling %s failed", rule.service)

    def scale(self, rule: ScaleRuleRecord, now: float) -> None:
        record = self.repo.find_service(rule.service)
        if record is None or not record.is_running or record.rollback is not None:
            return  # stopped, deleting, or rolling: the roll owns the instance count now
        cooldown = self.settings.autoscale_cooldown
        series = SERIES[rule.metric]
        points = [
            (p.time, p.value)
            for p in self.series.read(
                rule.service, FINE, now - cooldown, metrics=[series], instance=""
            )
        ]
        if points and now - points[-1][0] > 3 * self.settings.metrics_interval:
            points = []  # collection stalled: no decision on old news
        metadata = record.document.get("metadata", {})
        cpu = float(metadata.get("cpu") or 1)
        decision = decide(
            rule,
            record.instance_count,
            points,
            now=now,
            cooldown=cooldown,
            cpu_per_instance=cpu,
        )
        if decision is None or decision.count == record.instance_count:
            return
        self.apply(record, decision, now)

    def wake(self, name: str) -> bool:
        """A call arrived for ``name`` while it has no instance: if its rule scales it from
        zero and it is at zero, ask for one instance now. True when it is (or was already)
        on its way up."""
        rule = self.scaling.rule(name)
        record = self.repo.find_service(name)
        if rule is None or rule.min_instances != 0 or record is None or not record.is_running:
            return False
        if record.instance_count > 0:
            return True
        self.apply(record, Decision(1, "a call arrived while it had no instance"), self.clock())
        return True

    def apply(self, record: ServiceRecord, decision: Decision, now: float) -> None:
        document = dict(record.document)
        document["metadata"] = {**document.get("metadata", {}), "instance": decision.count}
        try:
            self.repo.update_service(
                record.name,
                expect={
                    "instance_count": record.instance_count,
                    "current_version": record.current_version,
                    "revision": record.revision,
                },
                instance_count=decision.count,
                document=document,
            )
        except (Conflict, NotFound):
            return  # a user changed or deleted it meanwhile: their change stands
        self.scaling.scaled(record.name, now)
        message = f"scaled from {record.instance_count} to {decision.count}: {decision.reason}"
        log.info("service %s %s", record.name, message)
        self.scaling.add_event(record.name, EVENT_KIND, message)
