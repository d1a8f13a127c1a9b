"""The model and processor packages a service description names, snapshotted into the store.

Used when a version is created (the controller) and by `eascmd test`; an error names the
description field whose package could not be had. Each snapshot is also unpacked once into
the node's cache right away: a hostile or broken archive (a path escape, a link out, a
device file, more bytes than allowed) is refused here, before the version is stored,
instead of failing again at every start of every instance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eas_core.artefacts.cache import ArtefactCache
from eas_core.artefacts.fetch import SourceGuard, snapshot
from eas_core.artefacts.store import ArtefactStore
from eas_core.config import ObjectStoreSettings
from eas_core.errors import EASError, InvalidDescription, PayloadTooLarge
from eas_core.spec.service import ServiceDescription

PACKAGE_FIELDS = {"model": "model_path", "processor": "processor_path"}
# The field naming a file inside each package, checked as soon as the package is unpacked.
ENTRY_FIELDS = {"model": "model_entry", "processor": "processor_entry"}


def snapshot_packages(
    description: ServiceDescription,
    store: ArtefactStore,
    *,
    max_bytes: int,
    cache: ArtefactCache,
    guard: SourceGuard | None = None,
    object_stores: ObjectStoreSettings | None = None,
) -> dict[str, dict[str, Any]]:
    """``{"model": {...}, "processor": {...}}`` for the packages the description names,
    each stored and already unpacked (so known to unpack safely) in ``cache``.
    Object-store credentials default to this process's configuration."""
    stores = object_stores or ObjectStoreSettings()
    packages: dict[str, dict[str, Any]] = {}
    for kind, field in PACKAGE_FIELDS.items():
        source = getattr(description, field)
        if not source:
            continue
        try:
            ref = snapshot(
                source,
                store,
                max_bytes=max_bytes,
                oss_endpoint=description.oss_endpoint,
                guard=guard,
                object_stores=stores,
            )
            tree = cache.materialize(store.path_of(ref.uri), ref.digest, ref.filename)
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(f"{field}: {exc.message}") from None
        except EASError as exc:
            raise InvalidDescription([f"{field}: {exc.message}"]) from None
        except OSError as exc:
            raise InvalidDescription([f"{field}: {exc}"]) from None
        _check_entry(tree, getattr(description, ENTRY_FIELDS[kind]), ENTRY_FIELDS[kind], source)
        packages[kind] = {
            "uri": ref.uri,
            "digest": ref.digest,
            "filename": ref.filename,
            "size": ref.size,
            "source": source,
        }
    return packages


def _check_entry(tree: Path, entry: str | None, field: str, source: str) -> None:
    """The entry file a description names is in its unpacked package (and inside it), so a
    typo is refused at create rather than failing every instance start."""
    if not entry:
        return
    path = (tree / entry).resolve()
    if not path.is_relative_to(tree.resolve()):
        raise InvalidDescription([f"{field}: {entry!r} points outside its package"])
    if not path.exists():
        present = sorted(p.name for p in tree.iterdir())[:10]
        raise InvalidDescription(
            [f"{field}: {entry!r} is not in the package {source} (it holds: {', '.join(present)})"]
        )
