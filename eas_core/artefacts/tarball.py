"""A directory as one reproducible tar: the same tree always gives the same bytes.

Whoever packs a directory — the controller snapshotting a local ``processor_path``, an object
store prefix fetched as a tree, ``eascmd server --demo``, the pipelines uploading a trained
model or a processor — packs it here, so the same tree has the same digest wherever it was
packed, and an unchanged package never makes a new version.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import os
import stat
import tarfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import BinaryIO

from eas_core.errors import ArtefactError, PayloadTooLarge


def pack_directory(
    root: Path,
    dest: Path,
    max_bytes: int | None = None,
    *,
    check_path: Callable[[Path], None] | None = None,
    exclude: Collection[str] = (),
) -> Path:
    """Pack ``root``'s contents (not ``root`` itself) as a tar whose bytes depend only on the
    names, contents and permission bits inside: sorted names, mtime 0, owner 0, fixed modes;
    gzip-compressed (with no time stamp either) when ``dest`` ends in ``.gz``.

    Symlinks are followed, so a tree of links (e.g. a Hugging Face snapshot) packs its files;
    ``check_path`` sees every path read, after its links are resolved, and raises to refuse
    it. Entries whose name matches an ``exclude`` pattern (``__pycache__``, ``*.pyc``) are
    left out, directories with everything under them. Over ``max_bytes`` of file contents
    raises PayloadTooLarge and leaves no ``dest``."""
    total = 0
    try:
        with contextlib.ExitStack() as stack:
            out: BinaryIO | gzip.GzipFile = stack.enter_context(dest.open("wb"))
            if dest.name.endswith(".gz"):
                out = stack.enter_context(
                    gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0)
                )
            tar = stack.enter_context(
                tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
            )
            for path, arcname in _walk(root, exclude):
                if check_path is not None:
                    check_path(path)  # a symlink inside may point anywhere
                st = path.stat()
                info = tarfile.TarInfo(arcname)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
                    continue
                total += st.st_size
                if max_bytes is not None and total > max_bytes:
                    raise PayloadTooLarge(f"{root} holds more than {max_bytes} bytes")
                info.size = st.st_size
                # Fixed modes keep the digest stable; a file closed to group or others
                # stays closed (0600 packs as 0600), so packing never loosens it.
                info.mode = (0o755 if st.st_mode & 0o111 else 0o644) & (st.st_mode | 0o700)
                with path.open("rb") as f:
                    tar.addfile(info, f)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


def _walk(root: Path, exclude: Collection[str]) -> Iterator[tuple[Path, str]]:
    """Directories and regular files under ``root`` in sorted order, following symlinks but
    never entering the same real directory twice (link cycles)."""
    seen: set[str] = set()

    def visit(directory: Path, prefix: str) -> Iterator[tuple[Path, str]]:
        real = os.path.realpath(directory)
        if real in seen:
            raise ArtefactError(f"{directory} is a symlink cycle")
        seen.add(real)
        for name in sorted(os.listdir(directory)):
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude):
                continue
            path = directory / name
            arcname = f"{prefix}{name}"
            if not path.exists():
                raise ArtefactError(f"{path} is a dangling symlink")
            if path.is_dir():
                yield path, arcname
                yield from visit(path, f"{arcname}/")
            elif path.is_file():
                yield path, arcname
            else:
                raise ArtefactError(f"{path} is neither a file nor a directory")
        seen.discard(real)

    if not root.is_dir():
        raise ArtefactError(f"{root} is not a directory")
    yield from visit(root, "")
