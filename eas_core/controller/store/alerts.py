"""Alert rules, their state per service, and the record of every delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from eas_core.controller.store.bounded import keep_latest
from eas_core.controller.store.repository import now
from eas_core.controller.store.tables import AlertRuleRow, AlertStateRow, DeliveryRow
from eas_core.errors import Conflict, NotFound

DELIVERIES_KEPT = 200  # per rule


@dataclass(frozen=True)
class AlertStateRecord:
    rule: str
    service: str
    status: str
    since: datetime
    value: float
    notified_at: float | None


@dataclass(frozen=True)
class DeliveryRecord:
    rule: str
    service: str
    time: datetime
    status: str
    attempts: int
    delivered: bool
    outcome: str


def _state(row: AlertStateRow) -> AlertStateRecord:
    return AlertStateRecord(
        row.rule, row.service, row.status, row.since, row.value, row.notified_at
    )


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    # -- rules ----------------------------------------------------------------------------
    def add_rule(self, name: str, document: dict[str, Any]) -> None:
        try:
            with self._sessions.begin() as s:
                s.add(AlertRuleRow(name=name, document=document, created_at=now()))
        except IntegrityError:
            raise Conflict(f"Name: an alert named {name!r} already exists") from None

    def rule(self, name: str) -> dict[str, Any]:
        with self._sessions.begin() as s:
            row = s.get(AlertRuleRow, name)
            if row is None:
                raise NotFound(f"alert {name!r} not found")
            return dict(row.document)

    def rules(self) -> list[dict[str, Any]]:
        with self._sessions.begin() as s:
            rows = s.scalars(select(AlertRuleRow).order_by(AlertRuleRow.name))
            return [dict(r.document) for r in rows]

    def delete_rule(self, name: str) -> None:
        with self._sessions.begin() as s:
            row = s.get(AlertRuleRow, name)
            if row is None:
                raise NotFound(f"alert {name!r} not found")
            s.execute(delete(AlertStateRow).where(AlertStateRow.rule == name))
            s.execute(delete(DeliveryRow).where(DeliveryRow.rule == name))
            s.delete(row)

    # -- states ---------------------------------------------------------------------------
    def states(self, rule: str) -> list[AlertStateRecord]:
        with self._sessions.begin() as s:
            rows = s.scalars(
                select(AlertStateRow)
                .where(AlertStateRow.rule == rule)
                .order_by(AlertStateRow.service)
            )
            return [_state(r) for r in rows]

    def set_state(
        self,
        rule: str,
        service: str,
        *,
        status: str,
        value: float,
        notified_at: float | None,
        changed: bool,
    ) -> None:
        """Write the state; ``changed`` (a new status) restarts its ``since``."""
        with self._sessions.begin() as s:
            if s.get(AlertRuleRow, rule) is None:
                return  # deleted meanwhile
            row = s.get(AlertStateRow, (rule, service))
            if row is None:
                row = AlertStateRow(rule=rule, service=service, since=now())
                s.add(row)
            elif changed:
                row.since = now()
            row.status = status
            row.value = value
            row.notified_at = notified_at

    # -- deliveries -----------------------------------------------------------------------
    def add_delivery(
        self,
        rule: str,
        service: str,
        *,
        status: str,
        attempts: int,
        delivered: bool,
        outcome: str,
    ) -> None:
        with self._sessions.begin() as s:
            if s.get(AlertRuleRow, rule) is None:
                return
            s.add(
                DeliveryRow(
                    rule=rule,
                    service=service,
                    time=now(),
                    status=status,
                    attempts=attempts,
                    delivered=delivered,
                    outcome=outcome,
                )
            )
            s.flush()
            keep_latest(s, DeliveryRow.id, DeliveryRow.rule == rule, DELIVERIES_KEPT)

    def deliveries(self, rule: str, limit: int = 50) -> list[DeliveryRecord]:
        """The rule's latest deliveries, oldest first."""
        with self._sessions.begin() as s:
            rows = s.scalars(
                select(DeliveryRow)
                .where(DeliveryRow.rule == rule)
                .order_by(DeliveryRow.id.desc())
                .limit(limit)
            ).all()
            return [
                DeliveryRecord(
                    r.rule, r.service, r.time, r.status, r.attempts, r.delivered, r.outcome
                )
                for r in reversed(rows)
            ]
