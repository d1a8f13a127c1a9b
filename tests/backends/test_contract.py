"""Every backend in the registry through the backend contract (tests/backends/contract.py)."""

from __future__ import annotations

from eas_core.controller.backends.registry import BACKENDS
from tests.backends.contract import HARNESSES, BackendContract


class TestBackendContract(BackendContract):
    pass


def test_every_registered_backend_runs_the_contract() -> None:
    assert sorted(h.name for h in HARNESSES) == sorted(BACKENDS)
