"""Model stores: where trained artefacts go, each under its own immutable URI.

    installation  `eascmd upload` → ``eas://artefacts/<sha256>/<name>`` (content-addressed)
    local         ``<path>/<prefix>/<stamp>-<digest>/<file>``, read-only once written; the
                  installation's nodes must see the same path (one machine, shared volume)
    oss           ``oss://<bucket>/<prefix>/<stamp>-<digest>/<file>`` through oss2

Every put gets a fresh name (UTC time stamp + content digest) even for identical bytes: a
retrain is a new model, and a URI must never come to mean other bytes. A directory artefact
(a SavedModel, a model with side files) is packed into a reproducible ``.tar.gz`` first;
the core unpacks archives when it deploys them.

``list`` is what the new-model sensor watches: every file under a prefix, with its content
digest — the sha256 of a local file, the ETag OSS computes from an object's bytes — so the
sensor keys on what a model is, not on when its file was last touched.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from eas_core.errors import EASError
from eas_core.sdk import file_digest, pack_directory
from eas_core.sdk.control import ControlClient
from eas_pipelines.declaration import (
    InstallationStore,
    LocalStore,
    OSSStore,
    PipelineDeclaration,
)
from eas_pipelines.settings import secret

PACK_EXCLUDED = ("__pycache__", "*.pyc", ".git", ".pytest_cache", ".ruff_cache", ".mypy_cache")


@dataclass(frozen=True)
class StoredArtefact:
    """One model in a store: ``uri`` is what goes into the service's ``model_path``."""

    uri: str
    key: str
    modified: float
    size: int
    # What the bytes are: equal digests, equal models (sha256 hex; an OSS ETag, quoted
    # by the store's kind so the two never compare equal by accident).
    digest: str


class ModelStore(Protocol):
    """Puts trained artefacts under new immutable URIs; lists what lies under a prefix."""

    kind: str

    def put(self, path: Path, name: str) -> StoredArtefact: ...

    def list(self, prefix: str) -> list[StoredArtefact]: ...

    def service_fields(self) -> dict[str, Any]:
        """Description fields a service needs to read this store's URIs."""
        ...


def _files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` in a stable order, less what ``pack`` leaves out."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _excluded(d))
        for filename in sorted(filenames):
            if not _excluded(filename):
                yield Path(dirpath) / filename


def _excluded(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in PACK_EXCLUDED)


def pack(directory: Path, dest: Path) -> Path:
    """A reproducible ``.tar.gz`` of ``directory``, less the caches a run leaves behind (so
    running a processor locally does not make its package new): same files, same bytes,
    same digest — so uploading an unchanged processor gives the same URI and makes no new
    version."""
    return pack_directory(directory, dest, exclude=PACK_EXCLUDED)


def stamp(now: float | None = None) -> str:
    """``20250101T120000123456Z``: sorts by time, unique per microsecond."""
    moment = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return moment.strftime("%Y%m%dT%H%M%S%fZ")


def _as_file(path: Path, tmp: Path) -> Path:
    if path.is_dir():
        return pack(path, tmp / f"{path.name}.tar.gz")
    if not path.is_file():
        raise EASError(f"{path}: the artefact does not exist")
    return path


def _unique_name(path: Path, name: str) -> tuple[str, str]:
    """(directory name, file name): ``<stamp>-<digest12>`` and ``<name><suffixes>``."""
    suffixes = "".join(path.suffixes[-2:]) if path.name.endswith(".tar.gz") else path.suffix
    return f"{stamp()}-{file_digest(path)[:12]}", f"{name}{suffixes}"


# (path, size, mtime_ns) → sha256: a sensor lists its prefix every few seconds and must not
# re-read every model each time; a file whose size and mtime are unchanged keeps its digest.
_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_KEPT = 4096


def _local_digest(path: Path, stat: os.stat_result) -> str:
    known = (str(path), stat.st_size, stat.st_mtime_ns)
    digest = _DIGESTS.get(known)
    if digest is None:
        if len(_DIGESTS) >= _DIGESTS_KEPT:
            _DIGESTS.clear()
        digest = _DIGESTS[known] = file_digest(path)
    return digest


def _etag_digest(etag: str) -> str:
    """OSS's ETag of an object: the MD5 of its bytes for a simple upload, a hash of the
    parts for a multipart one — the same bytes uploaded the same way give the same ETag."""
    return "etag:" + etag.strip('"').lower()


class InstallationModelStore:
    kind = "installation"

    def __init__(self, client: ControlClient) -> None:
        self.client = client

    def put(self, path: Path, name: str) -> StoredArtefact:
        with tempfile.TemporaryDirectory() as tmp:
            source = _as_file(path, Path(tmp))
            unique, filename = _unique_name(source, name)
            # The upload keeps the file name: make it unique so every model has its own URI.
            named = Path(tmp) / "named" / f"{name}-{unique}{filename[len(name) :]}"
            named.parent.mkdir()
            shutil.copyfile(source, named)
            result = self.client.upload(named)
            return StoredArtefact(
                uri=result.uri,
                key=named.name,
                modified=time.time(),
                size=named.stat().st_size,
                digest=file_digest(named),
            )

    def list(self, prefix: str) -> list[StoredArtefact]:
        raise EASError("the installation's artefact store cannot be listed")

    def service_fields(self) -> dict[str, Any]:
        return {}


class LocalModelStore:
    kind = "local"

    def __init__(self, root: Path, prefix: str = "") -> None:
        self.root = root
        self.prefix = prefix.strip("/")

    @property
    def base(self) -> Path:
        return self.root / self.prefix if self.prefix else self.root

    def put(self, path: Path, name: str) -> StoredArtefact:
        self.base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.base, prefix=".put-") as tmp:
            source = _as_file(path, Path(tmp))
            unique, filename = _unique_name(source, name)
            staged = Path(tmp) / unique
            staged.mkdir()
            shutil.copyfile(source, staged / filename)
            (staged / filename).chmod(0o444)
            final = self.base / unique
            # One rename: a watcher sees the whole artefact or nothing.
            staged.rename(final)
        file = final / filename
        return self._artefact(file)

    def _artefact(self, file: Path) -> StoredArtefact:
        stat = file.stat()
        return StoredArtefact(
            uri=str(file),
            key=file.relative_to(self.root).as_posix(),
            modified=stat.st_mtime,
            size=stat.st_size,
            digest=_local_digest(file, stat),
        )

    def list(self, prefix: str) -> list[StoredArtefact]:
        watched = self.base / prefix.strip("/")
        if not watched.is_dir():
            return []
        found = []
        for path in _files(watched):
            relative = path.relative_to(watched).parts
            if any(part.startswith(".") for part in relative):
                continue  # files being written (temp names) are not artefacts yet
            found.append(self._artefact(path))
        return found

    def service_fields(self) -> dict[str, Any]:
        return {}


class OSSModelStore:
    kind = "oss"

    def __init__(self, declared: OSSStore) -> None:
        self.declared = declared
        self.prefix = declared.prefix.strip("/")

    def _bucket(self) -> Any:
        try:
            import oss2  # type: ignore[import-not-found]
        except ImportError:
            raise EASError(
                "the oss store needs the 'oss2' package: pip install openeas[oss]"
            ) from None
        key_id = secret(self.declared.access_key_id_env)
        key_secret = secret(self.declared.access_key_secret_env)
        if not (key_id and key_secret):
            raise EASError(
                f"the oss store needs credentials in ${self.declared.access_key_id_env} and "
                f"${self.declared.access_key_secret_env}"
            )
        auth = oss2.Auth(key_id, key_secret)
        return oss2.Bucket(auth, self.declared.endpoint, self.declared.bucket)

    def _key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def put(self, path: Path, name: str) -> StoredArtefact:
        bucket = self._bucket()
        with tempfile.TemporaryDirectory() as tmp:
            source = _as_file(path, Path(tmp))
            unique, filename = _unique_name(source, name)
            key = self._key(unique, filename)
            result = bucket.put_object_from_file(key, str(source))
            size = source.stat().st_size
        return StoredArtefact(
            uri=f"oss://{self.declared.bucket}/{key}",
            key=key,
            modified=time.time(),
            size=size,
            digest=_etag_digest(result.etag),
        )

    def list(self, prefix: str) -> list[StoredArtefact]:
        import oss2

        bucket = self._bucket()
        watched = self._key(prefix) + "/"
        return [
            StoredArtefact(
                uri=f"oss://{self.declared.bucket}/{obj.key}",
                key=obj.key,
                modified=float(obj.last_modified),
                size=int(obj.size),
                digest=_etag_digest(obj.etag),
            )
            for obj in oss2.ObjectIterator(bucket, prefix=watched)
            if not obj.key.endswith("/")
        ]

    def service_fields(self) -> dict[str, Any]:
        return {"oss_endpoint": self.declared.endpoint}


def open_store(declaration: PipelineDeclaration, client: ControlClient | None) -> ModelStore:
    """The store a declaration names; ``client`` is needed by the installation store only."""
    store = declaration.store
    if isinstance(store, InstallationStore):
        if client is None:
            raise EASError("the installation store needs a control-API client")
        return InstallationModelStore(client)
    if isinstance(store, LocalStore):
        return LocalModelStore(declaration.resolve(store.path), store.prefix)
    return OSSModelStore(store)


def upload_local(client: ControlClient, path: Path) -> str:
    """A local processor (or model) file or directory, uploaded once per content: the URI
    follows the bytes, so an unchanged package never makes a new version."""
    with tempfile.TemporaryDirectory() as tmp:
        source = pack(path, Path(tmp) / f"{path.name}.tar.gz") if path.is_dir() else path
        if not source.is_file():
            raise EASError(f"{path}: no such file or directory")
        return client.upload(source).uri


__all__ = [
    "InstallationModelStore",
    "LocalModelStore",
    "ModelStore",
    "OSSModelStore",
    "StoredArtefact",
    "open_store",
    "pack",
    "upload_local",
]
