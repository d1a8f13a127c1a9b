"""Choosing the backend by name: the registry resolves ``"module:Class"`` late, and each
backend builds itself from the controller settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from eas_core.config import ControllerSettings
from eas_core.controller.backends.local import LocalBackend
from eas_core.controller.backends.registry import BACKENDS, backend_class, build_backend
from eas_core.errors import EASError


def test_local_is_the_default_and_resolves_to_the_local_backend() -> None:
    assert ControllerSettings.model_fields["backend"].default == "local"
    assert backend_class("local") is LocalBackend


def test_an_unknown_backend_is_refused_naming_the_setting_and_the_known_ones() -> None:
    with pytest.raises(EASError) as refused:
        backend_class("kubernetes")
    assert refused.value.message == (
        f"backend: no backend named 'kubernetes' (have: {', '.join(sorted(BACKENDS))})"
    )


def test_the_local_backend_is_built_from_the_controller_settings(tmp_path: Path) -> None:
    settings = ControllerSettings(
        data_dir=tmp_path,
        backend="local",
        node_cpu=3,
        node_memory_mb=1536,
        node_gpu=0,
        node_resource_group="batch",
        drain_seconds=0.25,
    )
    backend = build_backend(settings)
    try:
        assert isinstance(backend, LocalBackend)
        assert backend.drain_seconds == 0.25
        [node] = backend.nodes()
        assert (node.group, node.cpu, node.memory_mb, node.gpu) == ("batch", 3, 1536, 0)
        assert (node.used_cpu, node.used_memory_mb, node.used_gpu) == (0, 0, 0)
    finally:
        backend.shutdown(stop_instances=True)
