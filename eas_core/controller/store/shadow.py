"""Shadow settings: which service's calls are mirrored to which target, and how many.

A setting goes with both services: deleting either one ends the mirror (foreign keys with
``ON DELETE CASCADE``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Float, ForeignKey, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from eas_core.controller.store.tables import Base, ServiceRow
from eas_core.errors import NotFound


class ShadowRow(Base):
    """A service's mirror (eas_core.spec.shadow.ShadowSetting)."""

    __tablename__ = "shadow_settings"

    service: Mapped[str] = mapped_column(
        ForeignKey("services.name", ondelete="CASCADE"), primary_key=True
    )
    target: Mapped[str] = mapped_column(ForeignKey("services.name", ondelete="CASCADE"))
    percent: Mapped[float] = mapped_column(Float)
    # Microseconds since the epoch when the setting was made: gateways count from there.
    since: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class ShadowSettingRecord:
    service: str
    target: str
    percent: float
    since: int


def _record(row: ShadowRow) -> ShadowSettingRecord:
    return ShadowSettingRecord(row.service, row.target, row.percent, row.since)


class ShadowStore:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def set(self, service: str, *, target: str, percent: float, since: int) -> ShadowSettingRecord:
        with self._sessions.begin() as s:
            for name, field in ((service, "service"), (target, "Target")):
                if s.get(ServiceRow, name) is None:
                    raise NotFound(f"{field}: service {name!r} not found")
            row = s.get(ShadowRow, service)
            if row is None:
                row = ShadowRow(service=service)
                s.add(row)
            row.target = target
            row.percent = percent
            row.since = since
            s.flush()
            return _record(row)

    def get(self, service: str) -> ShadowSettingRecord | None:
        with self._sessions.begin() as s:
            row = s.get(ShadowRow, service)
            return _record(row) if row else None

    def all(self) -> dict[str, ShadowSettingRecord]:
        with self._sessions.begin() as s:
            return {r.service: _record(r) for r in s.scalars(select(ShadowRow))}

    def delete(self, service: str) -> bool:
        with self._sessions.begin() as s:
            row = s.get(ShadowRow, service)
            if row is None:
                return False
            s.delete(row)
            return True
