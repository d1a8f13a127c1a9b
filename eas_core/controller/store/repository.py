"""The repository: every read and write of the controller's state, one short transaction each.

Callers get plain frozen records, never ORM objects, so nothing outside this package touches
SQLAlchemy. Writes that must happen together (a service and its first version) share one
transaction, so a crash leaves either both or neither.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from eas_core.controller.store import migrate as migrations
from eas_core.controller.store.state import RollbackPoint, ServiceState
from eas_core.controller.store.tables import (
    SCHEMA_VERSION,
    AccessKeyRow,
    MetaRow,
    ServiceRow,
    VersionRow,
)
from eas_core.errors import Conflict, EASError, NotFound


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    token: str | None
    state: ServiceState
    instance_count: int
    current_version: int
    latest_version: int
    revision: int
    related_to: str | None
    weight: int | None
    rollback: RollbackPoint | None
    message: str
    document: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @property
    def is_running(self) -> bool:
        return self.state is ServiceState.RUNNING


@dataclass(frozen=True)
class VersionRecord:
    service: str
    version: int
    document: dict[str, Any]
    artefacts: dict[str, Any]
    created_at: datetime


def _service(row: ServiceRow) -> ServiceRecord:
    return ServiceRecord(
        name=row.name,
        token=row.token,
        state=row.state,
        instance_count=row.instance_count,
        current_version=row.current_version,
        latest_version=row.latest_version,
        revision=row.revision,
        related_to=row.related_to,
        weight=row.weight,
        rollback=RollbackPoint.from_json(row.rollback) if row.rollback else None,
        message=row.message,
        document=dict(row.document),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version(row: VersionRow) -> VersionRecord:
    return VersionRecord(
        service=row.service,
        version=row.version,
        document=dict(row.document),
        artefacts=dict(row.artefacts),
        created_at=row.created_at,
    )


class Repository:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            _private_sqlite_files(Path(url.removeprefix("sqlite:///")))
        try:
            self.engine: Engine = create_engine(driver_url(url), pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            raise EASError(
                f"store {shown}: its database driver {exc.name} is not installed "
                "(pip install 'openeas[postgresql]')"
            ) from None
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self.migrate()
        except BaseException:
            self.engine.dispose()  # a refused database keeps no connection open
            raise

    def migrate(self) -> None:
        """Bring the schema to this release's (Alembic), or refuse a newer database."""
        migrations.upgrade(self.engine)
        with self.session() as s:
            row = s.get(MetaRow, "schema_version")
            if row is None:
                s.add(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row.value) > SCHEMA_VERSION:
                raise EASError(
                    f"database schema {row.value} is newer than this release ({SCHEMA_VERSION})"
                )

    def close(self) -> None:
        """Close the pooled connections (a PostgreSQL server sees its sessions end)."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    # -- services ----------------------------------------------------------------------
    def create_service(
        self,
        *,
        name: str,
        token: str | None,
        instance_count: int,
        document: dict[str, Any],
        artefacts: dict[str, Any],
        related_to: str | None = None,
    ) -> ServiceRecord:
        stamp = now()
        try:
            with self.session() as s:
                row = ServiceRow(
                    name=name,
                    token=token,
                    state=ServiceState.RUNNING,
                    instance_count=instance_count,
                    current_version=1,
                    latest_version=1,
                    revision=0,
                    related_to=related_to,
                    weight=None,
                    rollback=None,
                    message="",
                    document=document,
                    created_at=stamp,
                    updated_at=stamp,
                )
                s.add(row)
                s.flush()
                s.add(
                    VersionRow(
                        service=name,
                        version=1,
                        document=document,
                        artefacts=artefacts,
                        created_at=stamp,
                    )
                )
                return _service(row)
        except IntegrityError:
            raise Conflict(f"name: a service named {name!r} already exists") from None

    def get_service(self, name: str) -> ServiceRecord:
        with self.session() as s:
            row = s.get(ServiceRow, name)
            if row is None:
                raise NotFound(f"service {name!r} not found")
            return _service(row)

    def find_service(self, name: str) -> ServiceRecord | None:
        with self.session() as s:
            row = s.get(ServiceRow, name)
            return _service(row) if row else None

    def list_services(self) -> list[ServiceRecord]:
        with self.session() as s:
            return [_service(r) for r in s.scalars(select(ServiceRow).order_by(ServiceRow.name))]

    def update_service(
        self, name: str, *, expect: dict[str, Any] | None = None, **changes: Any
    ) -> ServiceRecord:
        """Apply ``changes``; with ``expect``, only if those fields still hold those values
        (so a background decision never overwrites a change a user made meanwhile). A
        ``rollback`` change is a ``RollbackPoint`` or None."""
        if "rollback" in changes:
            changes["rollback"] = _rollback_json(changes["rollback"])
        with self.session() as s:
            row = s.get(ServiceRow, name, with_for_update=True)
            if row is None:
                raise NotFound(f"service {name!r} not found")
            if expect and any(getattr(row, k) != v for k, v in expect.items()):
                raise Conflict(f"service {name!r} changed meanwhile")
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = now()
            return _service(row)

    def add_version(
        self,
        name: str,
        document: dict[str, Any],
        artefacts: dict[str, Any],
        *,
        make_current: bool,
        rollback: RollbackPoint | None = None,
    ) -> ServiceRecord:
        """Store version N+1 and (usually) make it the one instances run."""
        with self.session() as s:
            row = s.get(ServiceRow, name, with_for_update=True)
            if row is None:
                raise NotFound(f"service {name!r} not found")
            number = row.latest_version + 1
            s.add(
                VersionRow(
                    service=name,
                    version=number,
                    document=document,
                    artefacts=artefacts,
                    created_at=now(),
                )
            )
            row.latest_version = number
            if make_current:
                row.current_version = number
                row.document = document
                row.instance_count = int(
                    document.get("metadata", {}).get("instance", row.instance_count)
                )
                row.rollback = _rollback_json(rollback)
                row.message = ""
            row.updated_at = now()
            return _service(row)

    def delete_service(self, name: str) -> None:
        with self.session() as s:
            row = s.get(ServiceRow, name)
            if row is None:
                raise NotFound(f"service {name!r} not found")
            # One DELETE statement rather than ORM deletes of loaded rows: with several
            # versions the ORM's per-row check of the matched count misfires on SQLite.
            s.execute(delete(VersionRow).where(VersionRow.service == name))
            s.delete(row)

    # -- versions ----------------------------------------------------------------------
    def get_version(self, name: str, version: int) -> VersionRecord:
        with self.session() as s:
            row = s.scalar(
                select(VersionRow).where(VersionRow.service == name, VersionRow.version == version)
            )
            if row is None:
                raise NotFound(f"service {name!r} has no version {version}")
            return _version(row)

    def list_versions(self, name: str) -> list[VersionRecord]:
        with self.session() as s:
            rows = s.scalars(
                select(VersionRow).where(VersionRow.service == name).order_by(VersionRow.version)
            )
            return [_version(r) for r in rows]

    # -- access keys ---------------------------------------------------------------------
    def add_access_key(self, key_id: str, secret: str, user: str = "admin") -> None:
        with self.session() as s:
            s.add(AccessKeyRow(id=key_id, secret=secret, user=user, created_at=now()))

    def access_key_secret(self, key_id: str) -> str | None:
        with self.session() as s:
            row = s.get(AccessKeyRow, key_id)
            return row.secret if row else None

    def count_access_keys(self) -> int:
        with self.session() as s:
            return len(s.scalars(select(AccessKeyRow.id)).all())


def _rollback_json(point: RollbackPoint | None) -> dict[str, Any] | None:
    return None if point is None else point.to_json()


def _private_sqlite_files(path: Path) -> None:
    """The database holds the access-key secrets and every service token in clear (see
    tables.py): it, its WAL and its shared-memory file are this user's only. SQLite creates
    the -wal and -shm files with the database file's mode, so the database file is made
    0600 before SQLite first opens it; files left by an older release are tightened."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(name), 0o600)


def driver_url(url: str) -> str:
    """``postgresql://…`` runs on psycopg 3 (the ``postgresql`` extra), not SQLAlchemy's
    default psycopg2; an explicit ``postgresql+driver://`` is kept as given."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (the API) never wait for the reconciler's writes; a crash loses nothing
    # committed. busy_timeout: two controller threads writing at once wait, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
