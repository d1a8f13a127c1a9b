"""The store's typed desired state against a real SQLite file: the state enum is stored as the
strings databases always held, so a database written before it reads unchanged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from eas_core.controller.store import Repository, RollbackPoint, ServiceState

DOCUMENT = {"name": "svc", "processor": "pmml", "metadata": {"instance": 1}}


def repository(tmp_path: Path) -> tuple[Repository, Path]:
    path = tmp_path / "eas.db"
    return Repository(f"sqlite:///{path}"), path


def create(repo: Repository, name: str = "svc") -> None:
    repo.create_service(
        name=name, token=None, instance_count=1, document=DOCUMENT, artefacts={}, related_to=None
    )


def test_states_are_stored_as_the_strings_older_databases_hold(tmp_path: Path) -> None:
    repo, path = repository(tmp_path)
    create(repo)
    assert repo.get_service("svc").state is ServiceState.RUNNING
    repo.update_service("svc", state=ServiceState.STOPPED)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT state FROM services").fetchall() == [("stopped",)]


def test_a_state_written_as_a_plain_string_reads_as_the_enum(tmp_path: Path) -> None:
    repo, path = repository(tmp_path)
    create(repo)
    repo.engine.dispose()
    for stored, state in [
        ("running", ServiceState.RUNNING),
        ("stopped", ServiceState.STOPPED),
        ("deleting", ServiceState.DELETING),
        ("retired", ServiceState.RETIRED),
    ]:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE services SET state = ?", (stored,))
        record = Repository(f"sqlite:///{path}").get_service("svc")
        assert record.state is state
        assert record.is_running == (state is ServiceState.RUNNING)


def test_a_rollback_point_round_trips_as_the_json_older_databases_hold(tmp_path: Path) -> None:
    repo, path = repository(tmp_path)
    create(repo)
    point = RollbackPoint(version=1, revision=2, document=DOCUMENT)
    assert repo.update_service("svc", rollback=point).rollback == point
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT json_extract(rollback, '$.revision') FROM services").fetchone()
    assert stored == (2,)
    assert repo.update_service("svc", rollback=None).rollback is None
    record = repo.add_version("svc", DOCUMENT, {}, make_current=True, rollback=point)
    assert record.rollback == point and record.current_version == 2
