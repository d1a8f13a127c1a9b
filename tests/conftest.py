from __future__ import annotations

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
    base = request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")
    return ("t_" + "".join(c for c in base if c.isalnum() or c == "_"))[:40]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
