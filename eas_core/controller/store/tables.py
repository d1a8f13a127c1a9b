"""Tables. Desired state, plus the monitoring time series the controller collects: what runs
is observed from the backend, never stored here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from eas_core.controller.store.state import ServiceState

# The schema of databases written before migrations existed, kept in the meta table so an
# older release refuses a newer file. Schema changes are now Alembic revisions
# (migrations/versions/); this number stays.
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


class MetricPointRow(Base):
    """One point of a monitoring series. ``instance`` is "" for the whole service; ``tier``
    0 holds the points as collected, tier 1 their averages over a coarser step."""

    __tablename__ = "metric_points"
    __table_args__ = (
        Index("metric_points_lookup", "service", "tier", "time"),
        Index("metric_points_age", "tier", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    instance: Mapped[str] = mapped_column(String(128), default="")
    metric: Mapped[str] = mapped_column(String(32))
    tier: Mapped[int] = mapped_column(Integer)
    time: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)


class AutoscaleRow(Base):
    """A service's autoscaling rule (eas_core.spec.monitoring.AutoscaleRule)."""

    __tablename__ = "autoscale_rules"

    service: Mapped[str] = mapped_column(
        ForeignKey("services.name", ondelete="CASCADE"), primary_key=True
    )
    min_instances: Mapped[int] = mapped_column(Integer)
    max_instances: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(16))
    target: Mapped[float] = mapped_column(Float)
    # When the rule last changed the instance count: scaling down waits a cool-down after it.
    changed_at: Mapped[float | None] = mapped_column(Float)


class EventRow(Base):
    """What the controller did to a service on its own (autoscaling, alerts), and why."""

    __tablename__ = "events"
    __table_args__ = (Index("events_by_service", "service", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)


class AlertRuleRow(Base):
    """An alert rule (eas_core.spec.alerts.AlertRule, as its JSON)."""

    __tablename__ = "alert_rules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AlertStateRow(Base):
    """Whether a rule fires for a service, since when, and when it was last POSTed."""

    __tablename__ = "alert_states"

    rule: Mapped[str] = mapped_column(
        ForeignKey("alert_rules.name", ondelete="CASCADE"), primary_key=True
    )
    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(DateTime)
    value: Mapped[float] = mapped_column(Float)
    notified_at: Mapped[float | None] = mapped_column(Float)


class DeliveryRow(Base):
    """One POST of an alert to its callback URL: how many tries, and how it ended."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("alert_deliveries_by_rule", "rule", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(ForeignKey("alert_rules.name", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str] = mapped_column(Text)
