"""The node's cache of unpacked artefacts, keyed by content digest.

Many instances on one node share a model, and a restarted instance should not unpack it
again, so each digest is materialized once under ``root/<digest>/``. A tree is built in a
temp directory beside it and renamed into place in one step: other processes see either no
tree or a whole one, and when two build the same digest at once the first rename wins.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from eas_core.artefacts.archive import is_archive, unpack
from eas_core.artefacts.store import check_digest, file_digest, safe_filename
from eas_core.errors import ArtefactError, PayloadTooLarge

_CHUNK = 1024 * 1024


class ArtefactCache:
    """Unpacked artefact trees under ``root``; ``max_bytes`` caps one unpacked tree."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def materialize(self, blob: Path, digest: str, filename: str) -> Path:
        """The directory holding ``blob`` unpacked (an archive) or as ``filename`` (any other
        file). ``digest`` must be ``blob``'s sha256: it is checked before anything is built,
        so a wrong digest can never poison the cache."""
        final = self.root / check_digest(digest)
        name = safe_filename(filename)
        if final.is_dir():
            self._ensure_name(final, blob, digest, name)
            return final
        _check_digest_of(blob, digest, name)
        self.root.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(dir=self.root, prefix=f".build-{digest[:12]}-"))
        try:
            if is_archive(blob, name=name):
                unpack(blob, building, max_bytes=self.max_bytes)
            else:
                _copy(blob, building / name, self.max_bytes)
            os.chmod(building, 0o755)
            try:
                os.rename(building, final)
            except OSError:
                if not final.is_dir():
                    raise
                # Another process renamed its tree first; theirs is as good as ours.
                shutil.rmtree(building, ignore_errors=True)
                self._ensure_name(final, blob, digest, name)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return final

    def _ensure_name(self, final: Path, blob: Path, digest: str, name: str) -> None:
        """Same bytes may arrive under another name as a single file (``a.pb``, then
        ``b.pb``); the processor looks for the name it was given, so add it beside the
        first one. Added by hard link from a finished copy: a partial file never has it."""
        if (final / name).exists() or is_archive(blob, name=name):
            return
        _check_digest_of(blob, digest, name)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".name-"))
        try:
            _copy(blob, staging / name, self.max_bytes)
            with contextlib.suppress(FileExistsError):
                os.link(staging / name, final / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _check_digest_of(blob: Path, digest: str, name: str) -> None:
    actual = file_digest(blob)
    if actual != digest:
        raise ArtefactError(f"{name}: content has sha256 {actual}, expected {digest}")


def _copy(source: Path, dest: Path, max_bytes: int) -> None:
    """Copy one file, keeping its exec bit (a ``.so`` or a script must stay runnable) and
    never opening it wider than the source (a 0600 blob stays 0600)."""
    size = source.stat().st_size
    if size > max_bytes:
        raise PayloadTooLarge(f"{source.name} is {size} bytes, over the limit of {max_bytes}")
    shutil.copyfile(source, dest)
    os.chmod(dest, source.stat().st_mode & 0o755)
