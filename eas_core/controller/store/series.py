"""The monitoring series: points written in batches, read by service and time, pruned by age.

Two tiers keep the table bounded: tier 0 holds every collected point for a short while, tier 1
averages over a coarser step for longer (``ControllerSettings.metrics_*``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from eas_core.controller.store.tables import MetricPointRow

FINE, COARSE = 0, 1


@dataclass(frozen=True)
class Point:
    service: str
    instance: str  # "" for the whole service
    metric: str
    time: float
    value: float


class SeriesStore:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def write(self, tier: int, points: Iterable[Point]) -> None:
        rows = [
            {
                "service": p.service,
                "instance": p.instance,
                "metric": p.metric,
                "tier": tier,
                "time": p.time,
                "value": p.value,
            }
            for p in points
        ]
        if not rows:
            return
        with self._sessions.begin() as s:
            s.execute(insert(MetricPointRow), rows)

    def read(
        self,
        service: str,
        tier: int,
        since: float,
        *,
        metrics: Iterable[str] | None = None,
        instance: str | None = None,
    ) -> list[Point]:
        """The service's points at or after ``since`` in ``tier``, oldest first: the whole
        service's and every instance's, or with ``instance`` only that instance's."""
        query = select(MetricPointRow).where(
            MetricPointRow.service == service,
            MetricPointRow.tier == tier,
            MetricPointRow.time >= since,
        )
        if instance is not None:
            query = query.where(MetricPointRow.instance == instance)
        if metrics is not None:
            query = query.where(MetricPointRow.metric.in_(list(metrics)))
        with self._sessions.begin() as s:
            return [
                Point(r.service, r.instance, r.metric, r.time, r.value)
                for r in s.scalars(query.order_by(MetricPointRow.time, MetricPointRow.id))
            ]

    def prune(self, tier: int, before: float) -> int:
        """Delete the tier's points older than ``before``; how many went."""
        with self._sessions.begin() as s:
            result = s.execute(
                delete(MetricPointRow).where(
                    MetricPointRow.tier == tier, MetricPointRow.time < before
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def forget(self, service: str) -> None:
        """A deleted service's series go with it (a new service of that name starts empty)."""
        with self._sessions.begin() as s:
            s.execute(delete(MetricPointRow).where(MetricPointRow.service == service))
