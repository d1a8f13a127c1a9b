"""Safe unpacking of model and processor packages (tar, tar.gz, tar.bz2, zip).

Archives come from users and from the network, so nothing in them is trusted: every member is
checked before anything is written (no absolute paths, no ``..`` escapes, no links leaving
the target, no devices), sizes are counted on the bytes actually written rather than taken
from headers (zip bombs), and a failed unpack leaves the target empty again.
"""

from __future__ import annotations

import bz2
import gzip
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, TypeVar

from eas_core.errors import ArtefactError, PayloadTooLarge

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".bz2", ".zip")

_CHUNK = 1024 * 1024
_TAR_MAGIC_OFFSET = 257
_TAR_HEADER = 512
# Reading a damaged stream surfaces as any of these, depending on the layer that notices.
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError)

_T = TypeVar("_T")


def is_archive(path: Path, *, name: str | None = None) -> bool:
    """True when ``path`` holds a tar (plain, gzip or bzip2) or a zip we should unpack.

    Decided by content, so a ``.tar.gz`` served as ``download`` is still unpacked and a gzip
    of a single file is not. A zip is unpacked only when named ``.zip`` or given no
    extension at all: ``.pt``, ``.jar``, ``.npz`` and ``.keras`` files are zips too, and
    their processor must receive them whole. ``name`` overrides ``path.name`` for that rule.
    """
    name = (name or path.name).lower()
    head = _head(path)
    if _is_zip(head):
        return name.endswith(".zip") or "." not in name.lstrip(".")
    if _has_tar_magic(head):
        return True
    opener = _decompressor(head)
    if opener is None:
        return False
    try:
        with opener(path) as f:
            inner = f.read(_TAR_HEADER)
    except _CORRUPT:
        # A damaged compressed stream named as an archive is meant as one: unpack says why.
        return name.endswith(ARCHIVE_SUFFIXES)
    return _has_tar_magic(inner)


def unpack(archive: Path, target: Path, *, max_bytes: int, max_members: int = 100_000) -> None:
    """Unpack ``archive`` into the existing empty directory ``target``.

    Raises ``ArtefactError`` for an unsafe member or a damaged archive, ``PayloadTooLarge``
    when the unpacked bytes or the member count pass the limits. On failure ``target`` is
    emptied again, so the caller never sees half a package.
    """
    if not target.is_dir():
        raise ArtefactError(f"cannot unpack into {target}: not a directory")
    if any(target.iterdir()):
        raise ArtefactError(f"cannot unpack into {target}: not empty")
    head = _head(archive)
    if not (_is_zip(head) or _has_tar_magic(head) or _decompressor(head)):
        raise ArtefactError(f"{archive.name} is not a valid archive: unknown format")
    writer = _Writer(archive.name, target, max_bytes=max_bytes, max_members=max_members)
    try:
        if _is_zip(head):
            _unpack_zip(archive, writer)
        else:
            _unpack_tar(archive, writer)
        writer.finish()
    except BaseException:
        _empty(target)
        raise


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(_TAR_MAGIC_OFFSET + 8)
    except FileNotFoundError:
        raise ArtefactError(f"{path} does not exist") from None
    except IsADirectoryError:
        return b""


def _is_zip(head: bytes) -> bool:
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def _has_tar_magic(header: bytes) -> bool:
    return header[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar"


def _gzip(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile is a binary IO


def _bz2(path: Path) -> IO[bytes]:
    return bz2.open(path, "rb")


def _decompressor(head: bytes) -> Callable[[Path], IO[bytes]] | None:
    if head.startswith(b"\x1f\x8b"):
        return _gzip
    if head.startswith(b"BZh"):
        return _bz2
    return None


class _Writer:
    """Writes members under ``target`` after checking them; symlinks are made last, so no
    member is ever written through a link that the archive itself created."""

    def __init__(self, label: str, target: Path, *, max_bytes: int, max_members: int) -> None:
        self.label = label
        self.root = os.path.realpath(target)
        self.max_bytes = max_bytes
        self.max_members = max_members
        self.written = 0
        self.members = 0
        self.symlinks: list[tuple[str, str]] = []
        self.pending: set[str] = set()  # paths of the symlinks made by finish()

    def count(self) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise PayloadTooLarge(f"{self.label} has more than {self.max_members} members")

    def member_path(self, name: str) -> str | None:
        """The normalised relative path of a member, or None for the archive root itself."""
        if not name or "\x00" in name:
            raise ArtefactError(f"{self.label}: member {name!r} has an invalid name")
        if name.startswith("/") or posixpath.isabs(name) or os.path.isabs(name):
            raise ArtefactError(f"{self.label}: member {name!r} has an absolute path")
        rel = posixpath.normpath(name)
        if rel == ".." or rel.startswith("../"):
            raise ArtefactError(f"{self.label}: member {name!r} escapes the target directory")
        return None if rel == "." else rel

    def _dest(self, rel: str, member: str) -> str:
        """Absolute destination; refuses a path whose parent is, or runs through, a link."""
        parts = rel.split("/")
        current = self.root
        for depth, part in enumerate(parts[:-1], start=1):
            current = os.path.join(current, part)
            if os.path.islink(current) or "/".join(parts[:depth]) in self.pending:
                raise ArtefactError(f"{self.label}: member {member!r} is written through a link")
            if os.path.lexists(current) and not os.path.isdir(current):
                raise ArtefactError(f"{self.label}: member {member!r} is under a file")
            os.makedirs(current, mode=0o755, exist_ok=True)
        return os.path.join(current, parts[-1])

    def directory(self, name: str) -> None:
        rel = self.member_path(name)
        if rel is None:
            return
        dest = self._dest(rel, name)
        if os.path.islink(dest) or (os.path.lexists(dest) and not os.path.isdir(dest)):
            raise ArtefactError(f"{self.label}: member {name!r} clashes with another member")
        os.makedirs(dest, mode=0o755, exist_ok=True)

    def file(
        self, name: str, source: IO[bytes], executable: bool, permissions: int = 0o777
    ) -> None:
        rel = self.member_path(name)
        if rel is None:
            raise ArtefactError(f"{self.label}: member {name!r} has an invalid name")
        dest = self._dest(rel, name)
        if os.path.isdir(dest) and not os.path.islink(dest):
            raise ArtefactError(f"{self.label}: member {name!r} clashes with a directory")
        if os.path.lexists(dest):
            os.unlink(dest)  # tar semantics: a later member of the same name wins
        # 0755 or 0644, less what the member keeps from group and others (never more).
        mode = (0o755 if executable else 0o644) & (permissions | 0o700)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            while chunk := _reading(self.label, lambda: source.read(_CHUNK)):
                self.written += len(chunk)
                if self.written > self.max_bytes:
                    raise PayloadTooLarge(
                        f"{self.label} unpacks to more than {self.max_bytes} bytes"
                    )
                out.write(chunk)
        os.chmod(dest, mode)  # the umask may have taken the executable bit away

    def hardlink_source(self, name: str, link: str) -> str:
        """Tar hardlinks name an earlier member, relative to the archive root."""
        escape = ArtefactError(
            f"{self.label}: hardlink {name!r} -> {link!r} escapes the target directory"
        )
        try:
            target_rel = self.member_path(link)
        except ArtefactError:
            raise escape from None
        if target_rel is None:
            raise escape
        return target_rel

    def hardlink(self, name: str, link: str) -> None:
        rel = self.member_path(name)
        if rel is None:
            raise ArtefactError(f"{self.label}: member {name!r} has an invalid name")
        source = self._dest(self.hardlink_source(name, link), name)
        if os.path.islink(source) or not os.path.isfile(source):
            raise ArtefactError(
                f"{self.label}: hardlink {name!r} -> {link!r} does not name an earlier file"
            )
        dest = self._dest(rel, name)
        if os.path.lexists(dest):
            raise ArtefactError(f"{self.label}: member {name!r} clashes with another member")
        os.link(source, dest, follow_symlinks=False)

    def symlink(self, name: str, link: str) -> None:
        rel = self.member_path(name)
        if rel is None:
            raise ArtefactError(f"{self.label}: member {name!r} has an invalid name")
        escape = ArtefactError(
            f"{self.label}: symlink {name!r} -> {link!r} escapes the target directory"
        )
        if not link or "\x00" in link or link.startswith("/") or os.path.isabs(link):
            raise escape
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
        if resolved == ".." or resolved.startswith("../"):
            raise escape
        self.symlinks.append((rel, link))
        self.pending.add(rel)

    def finish(self) -> None:
        """Create the symlinks, then check that each one really resolves inside the target:
        chains of links can escape where every single link looked harmless."""
        for rel, link in self.symlinks:
            dest = self._dest(rel, rel)
            if os.path.lexists(dest):
                raise ArtefactError(f"{self.label}: member {rel!r} clashes with another member")
            os.symlink(link, dest)
        for rel, link in self.symlinks:
            real = os.path.realpath(os.path.join(self.root, rel))
            if real != self.root and not real.startswith(self.root + os.sep):
                raise ArtefactError(
                    f"{self.label}: symlink {rel!r} -> {link!r} escapes the target directory"
                )


def _reading(label: str, read: Callable[[], _T]) -> _T:
    """Run one read from the archive, turning a damaged stream into ``ArtefactError``."""
    try:
        return read()
    except RuntimeError as exc:  # zipfile: encrypted member
        raise ArtefactError(f"{label} is not a valid archive: {exc}") from None
    except _CORRUPT as exc:
        reason = str(exc) or type(exc).__name__
        raise ArtefactError(f"{label} is not a valid archive: {reason}") from None


def _tar_members(label: str, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := _reading(label, tar.next)) is not None:
        yield member


def _unpack_tar(archive: Path, writer: _Writer) -> None:
    label = writer.label
    with _reading(label, lambda: tarfile.open(archive, "r:*")) as tar:
        for member in _tar_members(label, tar):
            writer.count()
            name = member.name
            if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
                raise ArtefactError(
                    f"{label}: member {name!r} is a device, fifo or other special file"
                )
            # Our checks come first, with our messages; the stdlib's data filter is a second
            # opinion that refuses whatever else it knows to be unsafe.
            rel = writer.member_path(name)
            if member.islnk():
                writer.hardlink_source(name, member.linkname)
            elif member.issym():
                writer.symlink(name, member.linkname)  # checked now, made by finish()
            try:
                tarfile.data_filter(member, writer.root)
            except tarfile.FilterError as exc:
                raise ArtefactError(f"{label}: member {name!r} refused: {exc}") from None
            if member.isdir():
                writer.directory(name)
            elif member.islnk():
                writer.hardlink(name, member.linkname)
            elif member.isreg():
                if rel is None:
                    raise ArtefactError(f"{label}: member {name!r} has an invalid name")
                if member.size > writer.max_bytes - writer.written:
                    raise PayloadTooLarge(f"{label} unpacks to more than {writer.max_bytes} bytes")
                source = _reading(label, partial(tar.extractfile, member))
                if source is None:
                    raise ArtefactError(f"{label}: member {name!r} has no data")
                with source:
                    writer.file(name, source, bool(member.mode & 0o111), member.mode)


def _unpack_zip(archive: Path, writer: _Writer) -> None:
    label = writer.label
    with _reading(label, partial(zipfile.ZipFile, archive)) as zf:
        infos = zf.infolist()
        if len(infos) > writer.max_members:
            raise PayloadTooLarge(f"{label} has more than {writer.max_members} members")
        for info in infos:
            writer.count()
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if info.is_dir():
                writer.directory(info.filename)
            elif kind == stat.S_IFLNK:
                # Zip stores a symlink's target as the member's data.
                with _reading(label, partial(zf.open, info)) as source:
                    raw = _reading(label, partial(source.read, 4096))
                writer.symlink(info.filename, raw.decode("utf-8", "replace"))
            elif kind in (0, stat.S_IFREG):
                with _reading(label, partial(zf.open, info)) as source:
                    # Zips made without Unix attributes carry no permissions to keep.
                    writer.file(info.filename, source, bool(mode & 0o111), mode & 0o777 or 0o777)
            else:
                raise ArtefactError(
                    f"{label}: member {info.filename!r} is a device, fifo or other special file"
                )


def _empty(target: Path) -> None:
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
