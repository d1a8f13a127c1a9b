"""Bringing a ``model_path`` / ``processor_path`` onto this node (SPEC §2).

One entry point for every source a service description may name: local paths, ``file://``,
``http(s)://``, the installation's store (``eas://``), ``oss://`` and ``s3://``. Whatever the
source, the result is one local file; a directory (local, or an object-store prefix) becomes
a deterministic tar, so the same tree always has the same digest and is cached once.
Every byte is counted against ``max_bytes`` as it arrives, and a failed fetch leaves
``dest_dir`` empty.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from eas_core.artefacts.store import URI_SCHEME, ArtefactRef, ArtefactStore, safe_filename
from eas_core.artefacts.tarball import pack_directory
from eas_core.config import ObjectStoreSettings
from eas_core.errors import ArtefactError, PayloadTooLarge

_CHUNK = 1024 * 1024


class SourceGuard(Protocol):
    """Says which local files and URLs a fetch may read (raises ArtefactError if not).

    Called for the source itself, for every file read while packing a directory (after
    symlinks are resolved) and for every URL requested, redirects included."""

    def check_path(self, path: Path) -> None: ...

    def check_url(self, url: str) -> None: ...


def fetch(
    source: str,
    dest_dir: Path,
    *,
    store: ArtefactStore | None,
    max_bytes: int,
    timeout: float = 60.0,
    oss_endpoint: str | None = None,
    guard: SourceGuard | None = None,
    object_stores: ObjectStoreSettings | None = None,
) -> Path:
    """Fetch ``source`` into the existing empty directory ``dest_dir``; return the file.
    ``object_stores`` holds the endpoints and credentials for ``oss://`` and ``s3://``."""
    stores = object_stores or ObjectStoreSettings.model_construct()
    dest_dir = Path(dest_dir)
    if not dest_dir.is_dir():
        raise ArtefactError(f"cannot fetch into {dest_dir}: not a directory")
    if any(dest_dir.iterdir()):
        raise ArtefactError(f"cannot fetch into {dest_dir}: not empty")
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    try:
        if scheme == "":
            return _fetch_local(Path(source).expanduser(), dest_dir, max_bytes, guard)
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise ArtefactError(f"{source}: file:// URLs must name a local path")
            return _fetch_local(Path(unquote(parts.path)), dest_dir, max_bytes, guard)
        if scheme in ("http", "https"):
            return _fetch_http(source, dest_dir, max_bytes, timeout, guard)
        if scheme == URI_SCHEME:
            if store is None:
                raise ArtefactError(f"{source}: this node has no artefact store configured")
            return _copy_file(store.path_of(source), dest_dir, max_bytes)
        if scheme == "oss":
            return _fetch_oss(source, dest_dir, max_bytes, timeout, oss_endpoint, stores)
        if scheme == "s3":
            return _fetch_s3(source, dest_dir, max_bytes, timeout, stores)
    except BaseException:
        _empty(dest_dir)
        raise
    raise ArtefactError(
        f"unsupported scheme '{scheme}://' in {_display(source)}: use a local path, file://, "
        f"http(s)://, {URI_SCHEME}://, oss:// or s3://"
    )


# --- local paths ------------------------------------------------------------------------------


def _fetch_local(
    path: Path, dest_dir: Path, max_bytes: int, guard: SourceGuard | None = None
) -> Path:
    if guard is not None:
        guard.check_path(path)
    if path.is_dir():
        return pack_directory(
            path,
            dest_dir / f"{safe_filename(path.name, 'model')}.tar",
            max_bytes,
            check_path=guard.check_path if guard is not None else None,
        )
    if not path.exists():
        raise ArtefactError(f"{path} does not exist")
    if not path.is_file():
        raise ArtefactError(f"{path} is neither a file nor a directory")
    return _copy_file(path, dest_dir, max_bytes)


def _copy_file(path: Path, dest_dir: Path, max_bytes: int) -> Path:
    """Copy a file, counting bytes (it may grow while we read) and keeping its permissions
    (less group/other write): an executable stays executable, a 0600 file stays 0600."""
    size = path.stat().st_size
    if size > max_bytes:
        raise PayloadTooLarge(f"{path.name} is {size} bytes, over the limit of {max_bytes}")
    dest = dest_dir / safe_filename(path.name)
    with path.open("rb") as f:
        _write(dest, iter(lambda: f.read(_CHUNK), b""), max_bytes, path.name)
    os.chmod(dest, path.stat().st_mode & 0o755)
    return dest


# --- http(s) ----------------------------------------------------------------------------------


def _fetch_http(
    url: str, dest_dir: Path, max_bytes: int, timeout: float, guard: SourceGuard | None = None
) -> Path:
    shown = _display(url)
    segment = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
    dest = dest_dir / safe_filename(segment)
    hooks: dict[str, list[Callable[[httpx.Request], None]]] = {}
    if guard is not None:
        check = guard.check_url
        hooks["request"] = [lambda request: check(str(request.url))]  # redirects too
    try:
        with (
            httpx.Client(follow_redirects=True, timeout=timeout, event_hooks=hooks) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise ArtefactError(f"GET {shown} answered HTTP {response.status_code}")
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise PayloadTooLarge(f"{shown} is {length} bytes, over the limit of {max_bytes}")
            _write(dest, response.iter_bytes(_CHUNK), max_bytes, shown)
    except httpx.HTTPError as exc:
        raise ArtefactError(f"cannot fetch {shown}: {exc}") from None
    return dest


def _display(url: str) -> str:
    """The URL without credentials or query: presigned URLs carry secrets there."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# --- object stores ----------------------------------------------------------------------------


def _bucket_key(source: str) -> tuple[str, str]:
    parts = urlsplit(source)
    if not parts.netloc:
        raise ArtefactError(f"{source}: expected {parts.scheme}://bucket/path")
    return parts.netloc, unquote(parts.path).lstrip("/")


def _fetch_oss(
    source: str,
    dest_dir: Path,
    max_bytes: int,
    timeout: float,
    endpoint: str | None,
    stores: ObjectStoreSettings,
) -> Path:
    try:
        import oss2  # type: ignore[import-not-found]
    except ImportError:
        raise ArtefactError(
            f"{source} needs the 'oss2' package: pip install openeas[oss]"
        ) from None
    if not endpoint:
        raise ArtefactError(f"{source} needs oss_endpoint (e.g. oss-cn-beijing.aliyuncs.com)")
    key_id, secret = stores.oss_access_key_id, stores.oss_access_key_secret
    if key_id and secret and stores.oss_security_token:
        auth = oss2.StsAuth(key_id, secret, stores.oss_security_token)
    elif key_id and secret:
        auth = oss2.Auth(key_id, secret)  # the V1 signature: HMAC-SHA1 over the request
    else:
        auth = oss2.AnonymousAuth()
    bucket_name, key = _bucket_key(source)
    bucket = oss2.Bucket(auth, endpoint, bucket_name, connect_timeout=timeout)

    def size_of(name: str) -> int | None:
        try:
            return int(bucket.head_object(name).content_length)
        except oss2.exceptions.OssError as exc:
            # HEAD answers carry no error body, so a missing key may come without its code.
            if exc.status == 404 and exc.code != "NoSuchBucket":
                return None
            raise

    def keys(prefix: str) -> Iterable[tuple[str, int]]:
        for obj in oss2.ObjectIterator(bucket, prefix=prefix):
            yield obj.key, int(obj.size)

    def read(name: str) -> Iterable[bytes]:
        body = bucket.get_object(name)
        return iter(lambda: body.read(_CHUNK), b"")

    try:
        return _fetch_object(source, key, dest_dir, max_bytes, size_of, keys, read)
    except oss2.exceptions.OssError as exc:
        raise ArtefactError(f"cannot fetch {source}: {exc}") from None


def _fetch_s3(
    source: str, dest_dir: Path, max_bytes: int, timeout: float, stores: ObjectStoreSettings
) -> Path:
    try:
        import boto3  # type: ignore[import-not-found]
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-not-found]
    except ImportError:
        raise ArtefactError(
            f"{source} needs the 'boto3' package: pip install openeas[s3]"
        ) from None
    from botocore.config import Config  # type: ignore[import-not-found]

    client = boto3.client(
        "s3",
        endpoint_url=stores.s3_endpoint_url or None,
        aws_access_key_id=stores.s3_access_key_id or None,
        aws_secret_access_key=stores.s3_secret_access_key or None,
        region_name=stores.s3_region or None,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2}),
    )
    bucket, key = _bucket_key(source)

    def size_of(name: str) -> int | None:
        try:
            return int(client.head_object(Bucket=bucket, Key=name)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def keys(prefix: str) -> Iterable[tuple[str, int]]:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], int(obj["Size"])

    def read(name: str) -> Iterable[bytes]:
        return client.get_object(Bucket=bucket, Key=name)["Body"].iter_chunks(_CHUNK)

    try:
        return _fetch_object(source, key, dest_dir, max_bytes, size_of, keys, read)
    except (BotoCoreError, ClientError) as exc:
        raise ArtefactError(f"cannot fetch {source}: {exc}") from None


def _fetch_object(
    source: str,
    key: str,
    dest_dir: Path,
    max_bytes: int,
    size_of: Callable[[str], int | None],
    keys: Callable[[str], Iterable[tuple[str, int]]],
    read: Callable[[str], Iterable[bytes]],
) -> Path:
    """One object if ``key`` names one, else every object under the "directory" ``key/``,
    packed like a local directory."""
    if key and not key.endswith("/"):
        size = size_of(key)
        if size is not None:
            if size > max_bytes:
                raise PayloadTooLarge(f"{source} is {size} bytes, over the limit of {max_bytes}")
            dest = dest_dir / safe_filename(posixpath.basename(key))
            _write(dest, read(key), max_bytes, source)
            return dest
    prefix = f"{key.rstrip('/')}/" if key.strip("/") else ""
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".prefix-") as staging:
        tree = Path(staging) / "tree"
        tree.mkdir()
        total = 0
        found = False
        for name, size in keys(prefix):
            rel = name[len(prefix) :]
            if not rel or rel.endswith("/"):
                continue  # "directory" placeholder objects
            normal = posixpath.normpath(rel)
            if normal.startswith(("../", "/")) or normal == "..":
                raise ArtefactError(f"{source}: object {name!r} escapes the prefix")
            total += size
            if total > max_bytes:
                raise PayloadTooLarge(f"{source} holds more than {max_bytes} bytes")
            target = tree / normal
            target.parent.mkdir(parents=True, exist_ok=True)
            _write(target, read(name), max_bytes, f"{source} ({name})")
            found = True
        if not found:
            raise ArtefactError(f"{source} does not exist (no object and no objects under it)")
        label = posixpath.basename(key.rstrip("/")) or urlsplit(source).netloc
        return pack_directory(tree, dest_dir / f"{safe_filename(label, 'model')}.tar", max_bytes)


# --- writing ----------------------------------------------------------------------------------


def _write(dest: Path, chunks: Iterable[bytes], max_bytes: int, label: str) -> None:
    """Write chunks to a new file, refusing (and removing it) past ``max_bytes``."""
    size = 0
    try:
        with dest.open("xb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"{label} is larger than {max_bytes} bytes")
                out.write(chunk)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        raise


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def snapshot(
    source: str,
    store: ArtefactStore,
    *,
    max_bytes: int,
    oss_endpoint: str | None = None,
    object_stores: ObjectStoreSettings | None = None,
    timeout: float = 60.0,
    guard: SourceGuard | None = None,
) -> ArtefactRef:
    """Fetch ``source`` once and keep the bytes in ``store``: a version deployed from it stays
    restorable whatever happens to the source later."""
    store.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".snapshot-") as tmp:
        path = fetch(
            source,
            Path(tmp),
            store=store,
            max_bytes=max_bytes,
            timeout=timeout,
            oss_endpoint=oss_endpoint,
            guard=guard,
            object_stores=object_stores,
        )
        return store.put_file(path)
