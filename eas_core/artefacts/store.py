"""The installation's own artefact store: what ``eascmd upload`` writes and ``eas://`` names.

Content-addressed by sha256, so uploading the same bytes twice costs nothing and a URI can
never come to mean different bytes. Files land by temp file + rename: a reader sees a whole
artefact or none.

Layout: ``root/<sha256>/<filename>``; ``root/.tmp/`` holds uploads in progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from eas_core.errors import ArtefactError, NotFound, PayloadTooLarge

URI_SCHEME = "eas"
_HOST = "artefacts"
_CHUNK = 1024 * 1024
_DIGEST = re.compile(r"[0-9a-f]{64}")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_MAX_NAME = 200  # bytes, under the usual 255


@dataclass(frozen=True)
class ArtefactRef:
    """What an upload returns: the URI to put in ``model_path`` and what it names."""

    uri: str
    digest: str
    filename: str
    size: int


def file_digest(path: Path) -> str:
    """sha256 hex of a file, streamed: models are often larger than memory."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def safe_filename(name: str, default: str = "download") -> str:
    """A single path segment: separators and control characters replaced, ``.``/``..`` and
    empty names replaced by ``default``, length capped, the extension kept."""
    cleaned = _UNSAFE.sub("_", name).strip()
    if cleaned in ("", ".", ".."):
        return default
    if len(cleaned.encode()) > _MAX_NAME:  # file systems cap names in bytes
        _, dot, ext = cleaned[-20:].partition(".")  # keeps ".tar.gz", not just ".gz"
        keep = f"{dot}{ext}"
        stem = cleaned[: len(cleaned) - len(keep)].encode()[: _MAX_NAME - len(keep.encode())]
        cleaned = stem.decode("utf-8", "ignore") + keep
    return cleaned


def check_digest(digest: str) -> str:
    """A digest becomes a directory name, so it must be exactly 64 lowercase hex digits."""
    if not _DIGEST.fullmatch(digest):
        raise ArtefactError(f"{digest!r} is not a sha256 hex digest")
    return digest


class ArtefactStore:
    """A local directory of content-addressed artefacts."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put_file(self, path: Path, filename: str | None = None) -> ArtefactRef:
        """Copy ``path`` in (hashing while copying); idempotent for the same bytes and name.
        The copy keeps the source's permissions or tighter, never looser: a 0600 file stays
        0600 (a new artefact is never writable by group or others)."""
        path = Path(path)
        if path.is_dir():
            raise ArtefactError(f"{path} is a directory; upload a file or an archive")
        try:
            with path.open("rb") as f:
                mode = os.fstat(f.fileno()).st_mode & 0o755
                upload = self.receive(filename or path.name, max_bytes=None, mode=mode)
                with upload:
                    for chunk in iter(lambda: f.read(_CHUNK), b""):
                        upload.write(chunk)
                    return upload.commit()
        except FileNotFoundError:
            raise ArtefactError(f"{path} does not exist") from None

    def receive(self, filename: str, *, max_bytes: int | None, mode: int = 0o600) -> Upload:
        """Start an upload written piece by piece (``write``), kept only by ``commit``; use it
        as a context manager so an unfinished one leaves nothing behind. Uploads from the
        network carry no permissions of their own: they are readable by this user only."""
        return Upload(self.root, filename, max_bytes=max_bytes, mode=mode)

    def path_of(self, uri: str) -> Path:
        """The local file an ``eas://`` URI names."""
        digest, filename = parse_uri(uri)
        path = self.root / digest / filename
        if not path.is_file():
            raise NotFound(f"no artefact {uri}")
        return path

    def exists(self, digest: str) -> bool:
        folder = self.root / check_digest(digest)
        return folder.is_dir() and any(p.is_file() for p in folder.iterdir())


class Upload:
    """One artefact on its way into the store: streamed to a temp file under ``.tmp/`` while
    it is counted and hashed (never held in memory), then renamed into place whole."""

    def __init__(self, root: Path, filename: str, *, max_bytes: int | None, mode: int) -> None:
        self.root = root
        self.name = safe_filename(filename)
        self.max_bytes = max_bytes
        self.mode = mode
        staging = root / ".tmp"
        staging.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=staging, prefix="upload-")
        self.tmp = Path(tmp_name)
        self.out = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise PayloadTooLarge(f"{self.name} is larger than {self.max_bytes} bytes")
        self.digest.update(chunk)
        self.out.write(chunk)

    def commit(self) -> ArtefactRef:
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()
        hexdigest = self.digest.hexdigest()
        folder = self.root / hexdigest
        folder.mkdir(exist_ok=True)
        final = folder / self.name
        if not final.is_file():
            os.chmod(self.tmp, self.mode)
            os.replace(self.tmp, final)
        else:
            # The same bytes stored before from a more open source: take away what this
            # source does not grant to group and others, never add.
            current = final.stat().st_mode & 0o777
            tightened = current & ~(0o077 & ~self.mode)
            if tightened != current:
                os.chmod(final, tightened)
        return ArtefactRef(
            uri=make_uri(hexdigest, self.name), digest=hexdigest, filename=self.name, size=self.size
        )

    def discard(self) -> None:
        self.out.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()  # after commit the temp file is gone already: nothing to do


def make_uri(digest: str, filename: str) -> str:
    return f"{URI_SCHEME}://{_HOST}/{check_digest(digest)}/{quote(filename, safe='')}"


def parse_uri(uri: str) -> tuple[str, str]:
    """``eas://artefacts/<digest>/<filename>`` → (digest, filename); refuses anything that
    could name a file outside the store."""
    malformed = ArtefactError(
        f"{uri!r} is not an artefact URI ({URI_SCHEME}://{_HOST}/<sha256>/<filename>)"
    )
    parts = urlsplit(uri)
    if parts.scheme != URI_SCHEME or parts.netloc != _HOST or parts.query or parts.fragment:
        raise malformed
    segments = parts.path.split("/")
    if len(segments) != 3 or segments[0] != "":
        raise malformed
    digest, filename = segments[1], unquote(segments[2])
    if not _DIGEST.fullmatch(digest):
        raise malformed
    if filename in ("", ".", "..") or _UNSAFE.search(filename):
        raise ArtefactError(f"{uri!r} names an unsafe filename {filename!r}")
    return digest, filename
