"""Backend names → implementations, as ``"module:Class"`` strings imported only when chosen.

An installation runs one backend, named by ``EAS_BACKEND`` (``eascmd server --backend``), so
nothing imports a backend it does not use (a cluster backend's client library, say). Each
class builds itself from the controller settings (``Backend.from_settings``).
"""

from __future__ import annotations

import importlib

from eas_core.config import ControllerSettings
from eas_core.controller.backends.base import Backend
from eas_core.errors import EASError

BACKENDS: dict[str, str] = {
    "local": "eas_core.controller.backends.local:LocalBackend",
    # Needs the `ray` extra (pip install "openeas[ray]").
    "ray": "eas_core.controller.backends.raycluster:RayBackend",
}


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``; an unknown name is refused with the known ones."""
    target = BACKENDS.get(name)
    if target is None:
        raise EASError(f"backend: no backend named {name!r} (have: {', '.join(sorted(BACKENDS))})")
    module_name, _, class_name = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_backend(settings: ControllerSettings) -> Backend:
    """The backend the settings name, built from them."""
    return backend_class(settings.backend).from_settings(settings)
