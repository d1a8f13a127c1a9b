"""Resource groups the operator created (`eascmd resource create`).

A group's nodes are not stored: a node joins a group by its label or custom resource and is
observed from the backend. What is stored is that the group exists, so services may name it
before any node has joined (they wait Pending until one does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from eas_core.controller.store.tables import Base
from eas_core.errors import Conflict, NotFound


class ResourceGroupRow(Base):
    """A resource group created by name (eas_core.spec.control.ResourceGroupRequest)."""

    __tablename__ = "resource_groups"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)


@dataclass(frozen=True)
class GroupRecord:
    name: str
    description: str
    created_at: datetime
    labels: dict[str, str] = field(default_factory=dict)


def _record(row: ResourceGroupRow) -> GroupRecord:
    return GroupRecord(row.name, row.description, row.created_at, dict(row.labels or {}))


class GroupStore:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def create(self, name: str, *, description: str, labels: dict[str, str]) -> GroupRecord:
        try:
            with self._sessions.begin() as s:
                if s.get(ResourceGroupRow, name) is not None:
                    raise Conflict(f"resource group {name!r} already exists")
                row = ResourceGroupRow(
                    name=name,
                    description=description,
                    labels=labels,
                    created_at=datetime.now(UTC).replace(tzinfo=None),
                )
                s.add(row)
                s.flush()
                return _record(row)
        except IntegrityError as exc:  # created by another controller at the same moment
            raise Conflict(f"resource group {name!r} already exists") from exc

    def get(self, name: str) -> GroupRecord | None:
        with self._sessions.begin() as s:
            row = s.get(ResourceGroupRow, name)
            return _record(row) if row else None

    def all(self) -> dict[str, GroupRecord]:
        with self._sessions.begin() as s:
            rows = s.scalars(select(ResourceGroupRow).order_by(ResourceGroupRow.name))
            return {r.name: _record(r) for r in rows}

    def delete(self, name: str) -> None:
        with self._sessions.begin() as s:
            row = s.get(ResourceGroupRow, name)
            if row is None:
                raise NotFound(f"resource group {name!r} was not created (nothing to delete)")
            s.delete(row)
