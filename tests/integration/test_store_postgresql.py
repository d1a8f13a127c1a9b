"""`eascmd server --store postgresql://…`: a whole installation keeps its desired state in
a real PostgreSQL cluster — no SQLite file is written, and a restarted installation finds its
services, versions and tokens there and serves them again."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.installation import Installation, python_service, start_installation
from tests.support.postgres import Cluster, postgres_cluster


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    with postgres_cluster() as cluster:
        yield cluster


def started(data_dir: Path, store: str) -> Installation:
    return start_installation(data_dir, extra_args=["--store", store])


def test_an_installation_on_postgresql_keeps_its_services_across_restarts(
    postgres: Cluster, tmp_path: Path
) -> None:
    store = postgres.new_database()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    first = started(data_dir, store)
    try:
        first.client.create_service(python_service("pgsvc"))
        first.client.wait_until_running("pgsvc", timeout=90)
        first.client.modify_service("pgsvc", {"metadata": {"cpu": 0.2}})
        first.client.wait_until_running("pgsvc", timeout=90)
        token = first.client.describe_service("pgsvc")["AccessToken"]
        answer = first.predict("pgsvc", b"echo:on postgresql", token=token)
        assert (answer.status_code, answer.content) == (200, b"on postgresql")
    finally:
        first.stop()
    assert not (data_dir / "eas.db").exists()
    with psycopg.connect(postgres.url(store.rsplit("/", 1)[1])) as conn:
        rows = conn.execute("SELECT name, token, revision FROM services").fetchall()
    # The settings change (`modify`) is a revision of version 1, not a new version.
    assert rows == [("pgsvc", token, 1)]

    second = started(data_dir, store)
    try:
        second.client.wait_until_running("pgsvc", timeout=90)
        assert second.client.describe_service("pgsvc")["AccessToken"] == token
        assert [v["Version"] for v in second.eascmd_json("versions", "pgsvc")] == [1]
        answer = second.predict("pgsvc", b"echo:again", token=token)
        assert (answer.status_code, answer.content) == (200, b"again")
        second.client.delete_service("pgsvc")
    finally:
        second.stop()


def test_an_unknown_store_is_refused_naming_it(tmp_path: Path) -> None:
    refused = subprocess.run(
        [
            *(sys.executable, "-m", "eas_core.cli", "server", "--data-dir", str(tmp_path)),
            *("--store", "mysql://eas@127.0.0.1/eas"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "store: 'mysql' is not a supported database" in refused.stderr
