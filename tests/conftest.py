"""The session's installation and what every test on it shares: a service name of its own,
and the deletion of what it created, whether it passed or failed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eas_core.sdk.control import ControlClient
from tests.support.installation import Installation, delete_services, start_installation


@pytest.fixture(scope="session")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("eas") / "data"
    data_dir.mkdir()
    running = start_installation(data_dir)
    yield running
    running.stop()


@pytest.fixture
def cleanup(request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """``cleanup(name)`` / ``cleanup(name, client)``: the service ``name`` and its related
    services (``create -r``) are deleted when the test ends, passed or failed — through the
    session installation unless a client of another installation is given."""
    registered: list[tuple[str, ControlClient]] = []

    def register(name: str, client: ControlClient | None = None) -> str:
        if client is None:
            client = request.getfixturevalue("installation").client
        registered.append((name, client))
        return name

    yield register
    for name, client in reversed(registered):
        delete_services(client, name)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest, cleanup: Callable[..., str]) -> str:
    """A service name of its own for each test (parametrized ones included). On the session
    installation, whatever the test created under it is deleted when the test ends."""
    base = request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    name = ("t_" + "".join(c for c in base if c.isalnum() or c == "_"))[:32] + "_" + digest
    if "installation" in request.fixturenames:
        cleanup(name)
    return name


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
