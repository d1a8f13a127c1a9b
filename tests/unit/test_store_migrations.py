"""Schema migrations (Alembic) and the repository on SQLite and PostgreSQL: a new database is
created at the newest revision, a SQLite file written before migrations existed is stamped
and upgraded with its data intact, and a database from a newer release is refused."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from eas_core.controller.store import (
    GroupStore,
    Repository,
    ScalingStore,
    SeriesStore,
    ServiceState,
)
from eas_core.controller.store import migrate as migrations
from eas_core.controller.store.series import FINE
from eas_core.controller.store.tables import Base
from eas_core.errors import Conflict, EASError, NotFound
from tests.support.postgres import Cluster

# Written by the store as it was before migrations (schema version 1, tables from
# create_all): one service with two versions, an access key, an event and a metric point.
SCHEMA_1_DUMP = Path(__file__).parent.parent / "data" / "store-schema1.sql"
DOCUMENT = {"name": "svc", "processor": "pmml", "metadata": {"instance": 1}}


def test_a_new_database_is_created_at_the_newest_revision(store_url: str) -> None:
    repo = Repository(store_url)
    try:
        assert migrations.current(repo.engine) == migrations.head()
        tables = set(inspect(repo.engine).get_table_names())
        assert {"services", "versions", "access_keys", "metric_points", "alert_rules"} <= tables
    finally:
        repo.close()
    again = Repository(store_url)  # opening an up-to-date database changes nothing
    assert migrations.current(again.engine) == migrations.head()
    again.close()


def test_the_revisions_create_exactly_the_tables_the_code_maps(store_url: str) -> None:
    """A table or column changed in tables.py without a revision shows up here."""
    repo = Repository(store_url)
    try:
        with repo.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        repo.close()


def test_services_versions_and_keys_round_trip(store_url: str) -> None:
    repo = Repository(store_url)
    try:
        repo.create_service(
            name="svc", token="t0k", instance_count=1, document=DOCUMENT, artefacts={"m": "x"}
        )
        changed = {**DOCUMENT, "metadata": {"instance": 2, "cpu": 2}}
        record = repo.add_version("svc", changed, {}, make_current=True)
        assert (record.current_version, record.latest_version) == (2, 2)
        assert repo.get_service("svc").document == changed
        assert repo.get_service("svc").token == "t0k"
        assert [v.version for v in repo.list_versions("svc")] == [1, 2]
        repo.update_service("svc", state=ServiceState.STOPPED)
        assert repo.get_service("svc").state is ServiceState.STOPPED
        repo.add_access_key("kid", "secret")
        assert repo.access_key_secret("kid") == "secret"
        repo.delete_service("svc")
        with pytest.raises(NotFound):
            repo.get_version("svc", 1)  # versions go with their service (ON DELETE CASCADE)
    finally:
        repo.close()


def test_a_sqlite_file_from_before_migrations_is_stamped_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "eas.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1_DUMP.read_text())
        assert "alembic_version" not in {
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    repo = Repository(f"sqlite:///{path}")
    try:
        assert migrations.current(repo.engine) == migrations.head()
        kept = repo.get_service("kept")
        assert (kept.token, kept.current_version, kept.instance_count) == ("token-of-kept", 2, 3)
        assert [v.version for v in repo.list_versions("kept")] == [1, 2]
        assert repo.access_key_secret("key-id") == "key-secret"
        assert [e.message for e in ScalingStore(repo.engine).events("kept")] == ["scaled to 3"]
        assert [p.value for p in SeriesStore(repo.engine).read("kept", FINE, 0)] == [4.0]
    finally:
        repo.close()


def test_a_database_migrated_by_a_newer_release_is_refused(store_url: str) -> None:
    Repository(store_url).close()
    repo_engine = Repository(store_url)
    with repo_engine.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    repo_engine.close()
    with pytest.raises(EASError, match="revision 9999 is unknown to this release"):
        Repository(store_url)


def test_controllers_starting_together_on_postgresql_migrate_once(postgres: Cluster) -> None:
    url = postgres.new_database()
    opened: list[Repository] = []
    failures: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(Repository(url))
        except BaseException as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for repo in opened:
        repo.close()
    assert failures == []
    assert len(opened) == 3
    check = Repository(url)
    assert migrations.current(check.engine) == migrations.head()
    check.close()


def test_a_database_at_revision_0002_gains_the_resource_groups_table(store_url: str) -> None:
    engine = create_engine(store_url)
    with engine.begin() as conn:
        cfg = migrations.config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    assert "resource_groups" not in inspect(engine).get_table_names()
    engine.dispose()
    repo = Repository(store_url)
    try:
        assert migrations.current(repo.engine) == migrations.head() == "0003"
        groups = GroupStore(repo.engine)
        groups.create("g1", description="two GPU nodes", labels={"team": "vision"})
        assert groups.get("g1") is not None
    finally:
        repo.close()


def test_resource_groups_are_created_once_listed_and_deleted(store_url: str) -> None:
    repo = Repository(store_url)
    try:
        groups = GroupStore(repo.engine)
        made = groups.create("g1", description="cpu pool", labels={"team": "search"})
        assert (made.name, made.description, made.labels) == ("g1", "cpu pool", {"team": "search"})
        with pytest.raises(Conflict, match="resource group 'g1' already exists"):
            groups.create("g1", description="", labels={})
        groups.create("a0", description="", labels={})
        assert list(groups.all()) == ["a0", "g1"]
        groups.delete("g1")
        assert groups.get("g1") is None
        with pytest.raises(NotFound, match="resource group 'g1' was not created"):
            groups.delete("g1")
    finally:
        repo.close()
