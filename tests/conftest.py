from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.installation import Installation, start_installation


@pytest.fixture(scope="session")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("eas") / "data"
    data_dir.mkdir()
    running = start_installation(data_dir)
    yield running
    running.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A service name of its own for each test (parametrized ones included)."""
    base = request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    return ("t_" + "".join(c for c in base if c.isalnum() or c == "_"))[:32] + "_" + digest


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
