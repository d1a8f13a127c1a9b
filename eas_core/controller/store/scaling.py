"""Autoscaling rules and the events the controller records about services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from eas_core.controller.store.bounded import keep_latest
from eas_core.controller.store.repository import now
from eas_core.controller.store.tables import AutoscaleRow, EventRow, ServiceRow
from eas_core.errors import NotFound

# Events kept per service; older ones are dropped as new ones come.
EVENTS_KEPT = 500


@dataclass(frozen=True)
class ScaleRuleRecord:
    service: str
    min_instances: int
    max_instances: int
    metric: str
    target: float
    changed_at: float | None


@dataclass(frozen=True)
class EventRecord:
    service: str
    time: datetime
    kind: str
    message: str


def _rule(row: AutoscaleRow) -> ScaleRuleRecord:
    return ScaleRuleRecord(
        row.service, row.min_instances, row.max_instances, row.metric, row.target, row.changed_at
    )


class ScalingStore:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def set_rule(
        self,
        service: str,
        *,
        min_instances: int,
        max_instances: int,
        metric: str,
        target: float,
        at: float,
    ) -> ScaleRuleRecord:
        """Create or replace the rule; its cool-down starts ``at`` (a new rule does not scale
        down a service the moment it is set)."""
        with self._sessions.begin() as s:
            if s.get(ServiceRow, service) is None:
                raise NotFound(f"service {service!r} not found")
            row = s.get(AutoscaleRow, service)
            if row is None:
                row = AutoscaleRow(service=service)
                s.add(row)
            row.min_instances = min_instances
            row.max_instances = max_instances
            row.metric = metric
            row.target = target
            row.changed_at = at
            s.flush()
            return _rule(row)

    def rule(self, service: str) -> ScaleRuleRecord | None:
        with self._sessions.begin() as s:
            row = s.get(AutoscaleRow, service)
            return _rule(row) if row else None

    def rules(self) -> list[ScaleRuleRecord]:
        with self._sessions.begin() as s:
            return [_rule(r) for r in s.scalars(select(AutoscaleRow))]

    def scaling_from_zero(self) -> set[str]:
        """The services whose rule lets them scale to zero (the gateway wakes them)."""
        with self._sessions.begin() as s:
            query = select(AutoscaleRow.service).where(AutoscaleRow.min_instances == 0)
            return set(s.scalars(query))

    def delete_rule(self, service: str) -> bool:
        with self._sessions.begin() as s:
            row = s.get(AutoscaleRow, service)
            if row is None:
                return False
            s.delete(row)
            return True

    def scaled(self, service: str, at: float) -> None:
        with self._sessions.begin() as s:
            row = s.get(AutoscaleRow, service)
            if row is not None:
                row.changed_at = at

    def add_event(self, service: str, kind: str, message: str) -> None:
        with self._sessions.begin() as s:
            s.add(EventRow(service=service, time=now(), kind=kind, message=message))
            s.flush()
            keep_latest(s, EventRow.id, EventRow.service == service, EVENTS_KEPT)

    def events(self, service: str, limit: int = 100) -> list[EventRecord]:
        """The service's latest ``limit`` events, oldest first."""
        with self._sessions.begin() as s:
            rows = s.scalars(
                select(EventRow)
                .where(EventRow.service == service)
                .order_by(EventRow.id.desc())
                .limit(limit)
            ).all()
            return [EventRecord(r.service, r.time, r.kind, r.message) for r in reversed(rows)]
