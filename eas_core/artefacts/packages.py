"""The model and processor packages a service description names, snapshotted into the store.

Used when a version is created (the controller) and by `eascmd test`; an error names the
description field whose package could not be had. Each snapshot is also unpacked once into
the node's cache right away: a hostile or broken archive (a path escape, a link out, a
device file, more bytes than allowed) is refused here, before the version is stored,
instead of failing again at every start of every instance.
"""

from __future__ import annotations

from typing import Any

from eas_core.artefacts.cache import ArtefactCache
from eas_core.artefacts.fetch import SourceGuard, snapshot
from eas_core.artefacts.store import ArtefactStore
from eas_core.config import ObjectStoreSettings
from eas_core.errors import EASError, InvalidDescription, PayloadTooLarge
from eas_core.spec.service import ServiceDescription

PACKAGE_FIELDS = {"model": "model_path", "processor": "processor_path"}


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
            cache.materialize(store.path_of(ref.uri), ref.digest, ref.filename)
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(f"{field}: {exc.message}") from None
        except EASError as exc:
            raise InvalidDescription([f"{field}: {exc.message}"]) from None
        except OSError as exc:
            raise InvalidDescription([f"{field}: {exc}"]) from None
        packages[kind] = {
            "uri": ref.uri,
            "digest": ref.digest,
            "filename": ref.filename,
            "size": ref.size,
            "source": source,
        }
    return packages
