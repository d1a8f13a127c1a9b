"""The store's tests run on both databases an installation can use: a SQLite file and a
throwaway PostgreSQL cluster (one per test session, a new database per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import Cluster, postgres_cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'eas.db'}"
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.new_database()
