"""Bring a store's schema to this release's with Alembic, on SQLite and PostgreSQL alike.

A database written before migrations existed (schema version 1, tables made by
``create_all``) has the tables of revision 0001 but no ``alembic_version``: it is stamped
0001, then upgraded like any other. On PostgreSQL an advisory lock makes controllers that
start together on one database migrate one after the other.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from eas_core.errors import EASError

# The revision whose tables equal those of schema version 1 (before migrations).
BASELINE = "0001"
# pg_advisory_lock key held while migrating ("EASMIGR" as an integer).
MIGRATION_LOCK = 0x4541534D494752


def config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "eas_core.controller.store:migrations")
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None  # the package ships at least the baseline
    return revision


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Stamp a pre-migration database, then upgrade to head; refuse a newer one."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg = config()
        cfg.attributes["connection"] = conn
        _refuse_newer(conn, cfg)
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables and "services" in tables:
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, "head")


def _refuse_newer(conn: Connection, cfg: Config) -> None:
    stored = MigrationContext.configure(conn).get_current_revision()
    if stored is None:
        return
    try:
        ScriptDirectory.from_config(cfg).get_revision(stored)
    except CommandError:
        raise EASError(
            f"database schema revision {stored} is unknown to this release (its newest is "
            f"{head()}): the database was migrated by a newer OpenEAS"
        ) from None
