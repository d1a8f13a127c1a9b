"""Artefacts (DESIGN.md "Artefacts"): getting ``model_path`` and ``processor_path`` onto a node.

``fetch`` brings any source (local path, http(s), ``eas://``, ``oss://``, ``s3://``) into one
local file; ``ArtefactCache`` turns that file into a content-addressed tree, unpacking
archives safely (``unpack``: no path escapes, size limits); ``ArtefactStore`` is the
installation's own store behind ``eascmd upload`` and ``eas://`` URIs; ``pack_directory``
makes a directory one reproducible tar and ``file_digest`` names a file by its sha256,
for every part that packs or hashes (the SDK re-exports both for the pipelines).
"""

from __future__ import annotations

from eas_core.artefacts.archive import ARCHIVE_SUFFIXES, is_archive, unpack
from eas_core.artefacts.cache import ArtefactCache
from eas_core.artefacts.fetch import fetch, snapshot
from eas_core.artefacts.store import (
    URI_SCHEME,
    ArtefactRef,
    ArtefactStore,
    file_digest,
    safe_filename,
)
from eas_core.artefacts.tarball import pack_directory

__all__ = [
    "ARCHIVE_SUFFIXES",
    "URI_SCHEME",
    "ArtefactCache",
    "ArtefactRef",
    "ArtefactStore",
    "fetch",
    "file_digest",
    "is_archive",
    "pack_directory",
    "safe_filename",
    "snapshot",
    "unpack",
]
