"""Tables. Desired state only: what runs is observed from the backend, never stored here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from eas_core.controller.store.state import ServiceState

SCHEMA_VERSION = 1


class Base(DeclarativeBase):
    pass


class StateColumn(TypeDecorator[ServiceState]):
    """A ``ServiceState`` kept as its plain string, as it always was."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: ServiceState | None, dialect: Dialect) -> str | None:
        return None if value is None else ServiceState(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> ServiceState | None:
        return None if value is None else ServiceState(value)


class ServiceRow(Base):
    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Kept in clear, not hashed: the gateway and instances verify signed requests with
    # HMAC(token, …), which needs the token itself. The database file is 0600 in a 0700
    # data directory for that reason (repository.py).
    token: Mapped[str | None] = mapped_column(String(256))
    state: Mapped[ServiceState] = mapped_column(StateColumn(), default=ServiceState.RUNNING)
    instance_count: Mapped[int] = mapped_column(Integer)
    current_version: Mapped[int] = mapped_column(Integer)
    latest_version: Mapped[int] = mapped_column(Integer)
    # Bumped by a settings change that needs instances restarted without a new version.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # Blue-green: the service whose endpoint this related service shares, and its share of
    # that endpoint's traffic (None until `release`; once released its own name is closed).
    related_to: Mapped[str | None] = mapped_column(String(64))
    weight: Mapped[int | None] = mapped_column(Integer)
    # Where a roll in progress goes back to if the new instances fail (a RollbackPoint as
    # JSON: {"version", "revision", "document"} of what served before it); None when no
    # roll runs.
    rollback: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    # The effective description instances of this service run now: the current version's
    # document with later settings changes (`modify -D`) applied.
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("service", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(ForeignKey("services.name", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # The full description of this version (wire spellings, unknown keys kept).
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Snapshots of model and processor packages in the artefact store.
    artefacts: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AccessKeyRow(Base):
    __tablename__ = "access_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Kept in clear, not hashed: a control-API signature is HMAC(secret, …), which only the
    # secret itself can verify. Protected by file modes instead (repository.py).
    secret: Mapped[str] = mapped_column(String(128))
    user: Mapped[str] = mapped_column(String(64), default="admin")
    created_at: Mapped[datetime] = mapped_column(DateTime)


class MetaRow(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
