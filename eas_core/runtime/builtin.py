"""Serve a built-in processor, chosen by its code (``EAS_PROCESSOR``) from the registry."""

from __future__ import annotations

from eas_core.config import RuntimeSettings
from eas_core.runtime.workers import serve
from processors import registry


def main() -> None:
    settings = RuntimeSettings()
    serve(
        lambda: registry.create(settings.processor),
        settings,
        threads=settings.worker_threads or 5,
        processes=settings.worker_processes or 1,
    )


if __name__ == "__main__":
    main()
