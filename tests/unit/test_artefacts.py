"""Artefacts: safe unpacking, the content-addressed store and cache, fetching from every source.

Everything runs on real files under ``tmp_path`` and a real HTTP server on loopback.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import sys
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from eas_core.artefacts import (
    ArtefactCache,
    ArtefactRef,
    ArtefactStore,
    fetch,
    file_digest,
    is_archive,
    safe_filename,
    unpack,
)
from eas_core.errors import ArtefactError, NotFound, PayloadTooLarge

MiB = 1024 * 1024


# --- building archives ------------------------------------------------------------------------


def make_tree(root: Path) -> Path:
    """A small model package: data, an executable script, a shared object, an empty dir."""
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(os.urandom(4096))
    (root / "app.py").write_text("print('hello')\n")
    (root / "app.py").chmod(0o755)
    (root / "lib").mkdir()
    (root / "lib" / "libprocessor.so").write_bytes(b"\x7fELF" + os.urandom(100))
    (root / "lib" / "libprocessor.so").chmod(0o755)
    (root / "empty").mkdir()
    return root


def tar_of(tree: Path, dest: Path, mode: str) -> Path:
    with tarfile.open(dest, mode) as tar:
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(tree)), recursive=False)
    return dest


def zip_of(tree: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, arcname=str(path.relative_to(tree)))
    return dest


def evil_tar(dest: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return dest


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


def receive(
    store: ArtefactStore, chunks: Iterable[bytes], filename: str, max_bytes: int
) -> ArtefactRef:
    """An upload arriving in pieces, as the control API stores it."""
    with store.receive(filename, max_bytes=max_bytes) as upload:
        for chunk in chunks:
            upload.write(chunk)
        return upload.commit()


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def arena(tmp_path: Path) -> tuple[Path, Path]:
    """An empty target beside an ``outside`` directory that an escape would write into."""
    target = tmp_path / "arena" / "target"
    target.mkdir(parents=True)
    outside = tmp_path / "arena" / "outside"
    outside.mkdir()
    (outside / "canary").write_text("untouched")
    return target, outside


# --- archive ----------------------------------------------------------------------------------

FORMATS: dict[str, Callable[[Path, Path], Path]] = {
    "model.tar.gz": lambda tree, dest: tar_of(tree, dest, "w:gz"),
    "model.tgz": lambda tree, dest: tar_of(tree, dest, "w:gz"),
    "model.tar": lambda tree, dest: tar_of(tree, dest, "w"),
    "model.tar.bz2": lambda tree, dest: tar_of(tree, dest, "w:bz2"),
    "model.bz2": lambda tree, dest: tar_of(tree, dest, "w:bz2"),
    "model.zip": zip_of,
}


@pytest.mark.parametrize("filename", list(FORMATS))
def test_unpack_round_trip_keeps_contents_and_exec_bit(tmp_path: Path, filename: str) -> None:
    tree = make_tree(tmp_path / "tree")
    archive = FORMATS[filename](tree, tmp_path / filename)
    target = tmp_path / "out"
    target.mkdir()

    assert is_archive(archive)
    unpack(archive, target, max_bytes=MiB)

    assert snapshot(target) == snapshot(tree)
    for path in tree.rglob("*"):
        if path.is_file():
            assert (target / path.relative_to(tree)).read_bytes() == path.read_bytes()
    assert os.access(target / "app.py", os.X_OK)
    assert os.access(target / "lib" / "libprocessor.so", os.X_OK)
    assert not os.access(target / "model" / "weights.bin", os.X_OK)
    assert (target / "empty").is_dir()


def test_is_archive_looks_at_content_not_name(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    tgz = tar_of(tree, tmp_path / "x.tar.gz", "w:gz")
    served_as = tmp_path / "download"
    shutil.copyfile(tgz, served_as)
    assert is_archive(served_as)

    text = tmp_path / "fake.tar.gz"
    text.write_text("not an archive at all")
    assert not is_archive(text)

    single = tmp_path / "weights.bin.gz"
    single.write_bytes(gzip.compress(os.urandom(2000)))
    assert not is_archive(single)
    single_bz2 = tmp_path / "weights.bin.bz2"
    single_bz2.write_bytes(bz2.compress(os.urandom(2000)))
    assert not is_archive(single_bz2)


def test_zip_containers_of_model_formats_stay_whole(tmp_path: Path) -> None:
    """``.pt``, ``.jar`` and ``.npz`` are zips that their processor must receive whole."""
    zipped = zip_of(make_tree(tmp_path / "tree"), tmp_path / "model.zip")
    for name in ("model.pt", "processor.jar", "arrays.npz"):
        copy = tmp_path / name
        shutil.copyfile(zipped, copy)
        assert not is_archive(copy)
        assert is_archive(copy, name="model.zip")
    bare = tmp_path / "download"
    shutil.copyfile(zipped, bare)
    assert is_archive(bare)


ESCAPES: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {
    "dotdot": [(member("../outside/x"), b"pwned")],
    "nested-dotdot": [(member("a/../../outside/x"), b"pwned")],
    "absolute": [(member("/etc/x"), b"pwned")],
    "symlink-absolute": [(member("passwd", tarfile.SYMTYPE, "/etc/passwd"), None)],
    "symlink-up": [(member("up", tarfile.SYMTYPE, "../outside"), None)],
    "symlink-dir-escape": [
        (member("d", tarfile.SYMTYPE, ".."), None),
        (member("d/outside/x"), b"pwned"),
    ],
    "write-through-symlink": [
        (member("sub", tarfile.DIRTYPE), None),
        (member("d", tarfile.SYMTYPE, "sub"), None),
        (member("d/x"), b"through the link"),
    ],
    "symlink-chain": [
        (member("s", tarfile.SYMTYPE, "."), None),
        (member("t", tarfile.SYMTYPE, "s/.."), None),
    ],
    "hardlink-up": [(member("h", tarfile.LNKTYPE, "../outside/canary"), None)],
    "hardlink-absolute": [(member("h", tarfile.LNKTYPE, "/etc/passwd"), None)],
    "fifo": [(member("pipe", tarfile.FIFOTYPE), None)],
    "device": [(member("dev", tarfile.CHRTYPE), None)],
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_unsafe_tar_members_are_refused(
    tmp_path: Path, arena: tuple[Path, Path], case: str
) -> None:
    target, outside = arena
    archive = evil_tar(tmp_path / "evil.tar.gz", [(m, d) for m, d in ESCAPES[case]])
    before = snapshot(tmp_path / "arena")

    with pytest.raises(ArtefactError) as caught:
        unpack(archive, target, max_bytes=MiB)

    named = {m.name for m, _ in ESCAPES[case]}
    assert any(repr(name) in caught.value.message for name in named), caught.value.message
    assert list(target.iterdir()) == []
    assert snapshot(tmp_path / "arena") == before
    assert (outside / "canary").read_text() == "untouched"


@pytest.mark.parametrize(
    ("name", "mode", "data"),
    [
        ("../outside/x", 0o100644, b"pwned"),
        ("/etc/x", 0o100644, b"pwned"),
        ("link", stat.S_IFLNK | 0o777, b"/etc/passwd"),
        ("link", stat.S_IFLNK | 0o777, b"../outside"),
        ("fifo", stat.S_IFIFO | 0o644, b""),
    ],
)
def test_unsafe_zip_members_are_refused(
    tmp_path: Path, arena: tuple[Path, Path], name: str, mode: int, data: bytes
) -> None:
    target, outside = arena
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", b"fine")
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, data)
    before = snapshot(tmp_path / "arena")

    with pytest.raises(ArtefactError, match=re.escape(repr(name))):
        unpack(archive, target, max_bytes=MiB)

    assert list(target.iterdir()) == []
    assert snapshot(tmp_path / "arena") == before
    assert (outside / "canary").read_text() == "untouched"


def test_links_inside_the_target_are_kept(tmp_path: Path) -> None:
    archive = evil_tar(
        tmp_path / "links.tar.gz",
        [
            (member("data/real.bin"), b"payload"),
            (member("current", tarfile.SYMTYPE, "data"), None),
            (member("alias.bin", tarfile.SYMTYPE, "data/real.bin"), None),
            (member("hard.bin", tarfile.LNKTYPE, "data/real.bin"), None),
        ],
    )
    target = tmp_path / "out"
    target.mkdir()
    unpack(archive, target, max_bytes=MiB)
    assert (target / "current" / "real.bin").read_bytes() == b"payload"
    assert (target / "alias.bin").is_symlink()
    assert (target / "alias.bin").read_bytes() == b"payload"
    assert (target / "hard.bin").stat().st_ino == (target / "data" / "real.bin").stat().st_ino


def test_zip_bomb_is_refused_while_extracting(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with (
        zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open("zeros.bin", "w") as out,
    ):
        for _ in range(50):
            out.write(bytes(MiB))
    assert archive.stat().st_size < MiB
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(PayloadTooLarge, match="more than 1048576 bytes"):
        unpack(archive, target, max_bytes=MiB)
    assert list(target.iterdir()) == []


def test_gzip_tar_bomb_is_refused(tmp_path: Path) -> None:
    archive = evil_tar(
        tmp_path / "bomb.tar.gz",
        [(member(f"part{i}.bin"), bytes(MiB // 2)) for i in range(6)],
    )
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(PayloadTooLarge):
        unpack(archive, target, max_bytes=MiB)
    assert list(target.iterdir()) == []


def test_too_many_members_is_refused(tmp_path: Path) -> None:
    archive = evil_tar(tmp_path / "many.tar.gz", [(member(f"f{i}"), b"x") for i in range(20)])
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(PayloadTooLarge, match="more than 10 members"):
        unpack(archive, target, max_bytes=MiB, max_members=10)
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("filename", ["model.tar.gz", "model.tar.bz2", "model.zip", "model.tar"])
def test_truncated_archive_is_refused(tmp_path: Path, filename: str) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big.bin").write_bytes(os.urandom(200_000))
    whole = FORMATS[filename](tree, tmp_path / f"whole-{filename}")
    broken = tmp_path / filename
    broken.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ArtefactError, match=f"{re.escape(filename)} is not a valid archive"):
        unpack(broken, target, max_bytes=MiB)
    assert list(target.iterdir()) == []


def test_garbage_is_not_an_archive(tmp_path: Path) -> None:
    garbage = tmp_path / "model.tar.gz"
    garbage.write_bytes(b"\x1f\x8b" + os.urandom(1000))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ArtefactError, match=r"model\.tar\.gz is not a valid archive"):
        unpack(garbage, target, max_bytes=MiB)
    plain = tmp_path / "notes.txt"
    plain.write_text("hello")
    with pytest.raises(ArtefactError, match="not a valid archive"):
        unpack(plain, target, max_bytes=MiB)


def test_unpack_needs_an_empty_target(tmp_path: Path) -> None:
    archive = tar_of(make_tree(tmp_path / "tree"), tmp_path / "m.tar", "w")
    target = tmp_path / "out"
    target.mkdir()
    (target / "already").write_text("here")
    with pytest.raises(ArtefactError, match="not empty"):
        unpack(archive, target, max_bytes=MiB)
    assert (target / "already").read_text() == "here"


# --- store ------------------------------------------------------------------------------------


def test_store_put_file_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = ArtefactStore(tmp_path / "store")
    source = tmp_path / "model.tar.gz"
    source.write_bytes(os.urandom(10_000))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    ref = store.put_file(source)
    assert ref.digest == digest == file_digest(source)
    assert ref.uri == f"eas://artefacts/{digest}/model.tar.gz"
    assert ref.filename == "model.tar.gz"
    assert ref.size == 10_000
    assert store.path_of(ref.uri).read_bytes() == source.read_bytes()
    assert store.exists(digest)
    assert not store.exists("0" * 64)

    assert store.put_file(source) == ref
    assert receive(store, [source.read_bytes()], "model.tar.gz", max_bytes=MiB) == ref
    assert list((tmp_path / "store" / ".tmp").iterdir()) == []

    renamed = store.put_file(source, "other name.tgz")
    assert renamed.digest == digest
    assert renamed.uri == f"eas://artefacts/{digest}/other%20name.tgz"
    assert store.path_of(renamed.uri).name == "other name.tgz"


def test_store_upload_over_the_limit_leaves_nothing(tmp_path: Path) -> None:
    store = ArtefactStore(tmp_path / "store")
    chunks = (bytes(64 * 1024) for _ in range(20))
    with pytest.raises(PayloadTooLarge):
        receive(store, chunks, "big.bin", max_bytes=MiB)
    assert [p.name for p in (tmp_path / "store").iterdir()] == [".tmp"]
    assert list((tmp_path / "store" / ".tmp").iterdir()) == []


def test_store_sanitizes_filenames(tmp_path: Path) -> None:
    store = ArtefactStore(tmp_path / "store")
    source = tmp_path / "x"
    source.write_bytes(b"content")
    ref = store.put_file(source, "../../evil\\name\n")
    assert "/" not in ref.filename and "\\" not in ref.filename
    assert store.path_of(ref.uri).parent.parent == tmp_path / "store"
    assert store.put_file(source, "..").filename == "download"
    assert safe_filename("a" * 300 + ".tar.gz").endswith(".tar.gz")
    assert len(safe_filename("é" * 300).encode()) <= 200


@pytest.mark.parametrize(
    "uri",
    [
        "http://artefacts/abc/x",
        "eas://artefacts/notahash/x",
        "eas://other/" + "a" * 64 + "/x",
        "eas://artefacts/" + "a" * 64,
        "eas://artefacts/" + "a" * 64 + "/a/b",
        "eas://artefacts/" + "a" * 64 + "/..",
        "eas://artefacts/" + "a" * 64 + "/%2e%2e",
        "eas://artefacts/" + "a" * 64 + "/..%2Fetc%2Fpasswd",
        "eas://artefacts/" + "A" * 64 + "/x",
    ],
)
def test_store_refuses_malformed_uris(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ArtefactError):
        ArtefactStore(tmp_path / "store").path_of(uri)


def test_store_missing_artefact_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ArtefactStore(tmp_path / "store").path_of("eas://artefacts/" + "b" * 64 + "/model.pb")


# --- fetch: local, file://, eas://, unknown ---------------------------------------------------


def empty_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_fetch_local_file_and_file_url(tmp_path: Path) -> None:
    source = tmp_path / "src" / "app.py"
    source.parent.mkdir()
    source.write_text("print(1)\n")
    source.chmod(0o755)

    got = fetch(str(source), empty_dir(tmp_path / "a"), store=None, max_bytes=MiB)
    assert got == tmp_path / "a" / "app.py"
    assert got.read_text() == "print(1)\n"
    assert os.access(got, os.X_OK)

    got = fetch(source.as_uri(), empty_dir(tmp_path / "b"), store=None, max_bytes=MiB)
    assert got.read_bytes() == source.read_bytes()


def test_fetch_local_file_over_the_limit(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(2 * MiB))
    dest = empty_dir(tmp_path / "dest")
    with pytest.raises(PayloadTooLarge):
        fetch(str(source), dest, store=None, max_bytes=MiB)
    assert list(dest.iterdir()) == []


def test_fetch_local_directory_packs_a_deterministic_tar(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "resnet")
    first = fetch(str(tree), empty_dir(tmp_path / "a"), store=None, max_bytes=MiB)
    assert first.name == "resnet.tar"

    # Same names and bytes elsewhere, written later: same digest.
    copy = tmp_path / "elsewhere" / "resnet"
    shutil.copytree(tree, copy)
    os.utime(copy / "app.py", (1_000_000, 1_000_000))
    second = fetch(str(copy), empty_dir(tmp_path / "b"), store=None, max_bytes=MiB)
    third = fetch(str(tree), empty_dir(tmp_path / "c"), store=None, max_bytes=MiB)
    assert file_digest(first) == file_digest(second) == file_digest(third)

    with tarfile.open(first) as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in tar.getmembers())
    assert names == sorted(names)
    out = empty_dir(tmp_path / "out")
    unpack(first, out, max_bytes=MiB)
    assert snapshot(out) == snapshot(tree)
    assert os.access(out / "app.py", os.X_OK)


def test_fetch_directory_over_the_limit(tmp_path: Path) -> None:
    tree = tmp_path / "big"
    tree.mkdir()
    for i in range(3):
        (tree / f"part{i}").write_bytes(bytes(MiB // 2))
    dest = empty_dir(tmp_path / "dest")
    with pytest.raises(PayloadTooLarge):
        fetch(str(tree), dest, store=None, max_bytes=MiB)
    assert list(dest.iterdir()) == []


def test_fetch_missing_path_and_unknown_scheme(tmp_path: Path) -> None:
    dest = empty_dir(tmp_path / "dest")
    missing = tmp_path / "nowhere" / "model.pb"
    with pytest.raises(ArtefactError, match=re.escape(str(missing))):
        fetch(str(missing), dest, store=None, max_bytes=MiB)
    with pytest.raises(ArtefactError, match="ftp"):
        fetch("ftp://example.com/model.tar.gz", dest, store=None, max_bytes=MiB)
    assert list(dest.iterdir()) == []


def test_fetch_from_the_store(tmp_path: Path) -> None:
    store = ArtefactStore(tmp_path / "store")
    source = tmp_path / "model.onnx"
    source.write_bytes(os.urandom(3000))
    ref = store.put_file(source)

    got = fetch(ref.uri, empty_dir(tmp_path / "dest"), store=store, max_bytes=MiB)
    assert got.name == "model.onnx"
    assert got.read_bytes() == source.read_bytes()

    with pytest.raises(ArtefactError, match="no artefact store"):
        fetch(ref.uri, empty_dir(tmp_path / "other"), store=None, max_bytes=MiB)
    with pytest.raises(NotFound):
        fetch(
            "eas://artefacts/" + "c" * 64 + "/x.bin",
            empty_dir(tmp_path / "third"),
            store=store,
            max_bytes=MiB,
        )


def test_fetch_oss_without_oss2_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "oss2", None)  # as if it were not installed
    with pytest.raises(
        ArtefactError, match=r"needs the 'oss2' package: pip install openeas\[oss\]"
    ):
        fetch(
            "oss://bucket/model.tar.gz",
            empty_dir(tmp_path / "dest"),
            store=None,
            max_bytes=MiB,
            oss_endpoint="oss-cn-beijing.aliyuncs.com",
        )


def test_fetch_s3_without_boto3_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if it were not installed
    with pytest.raises(ArtefactError, match="needs the 'boto3' package"):
        fetch("s3://bucket/model.tar.gz", empty_dir(tmp_path / "dest"), store=None, max_bytes=MiB)


# --- fetch: http ------------------------------------------------------------------------------


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, Route]

    def do_GET(self) -> None:
        route = self.routes.get(self.path, Route(404, b"no such file"))
        try:
            self.send_response(route.status)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.send_length:
                self.send_header("Content-Length", str(len(route.body)))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(route.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: that is what an over-limit test wants

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, Route]]]:
    routes: dict[str, Route] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_http(tmp_path: Path, http_server: tuple[str, dict[str, Route]]) -> None:
    base, routes = http_server
    body = os.urandom(200_000)
    routes["/models/my%20model.tar.gz"] = Route(body=body)
    routes["/models/latest?sig=secret"] = Route(302, headers={"Location": "/blob"})
    routes["/blob"] = Route(body=b"redirected", send_length=False)
    routes["/"] = Route(body=b"root")

    got = fetch(
        f"{base}/models/my%20model.tar.gz", empty_dir(tmp_path / "a"), store=None, max_bytes=MiB
    )
    assert got.name == "my model.tar.gz"
    assert got.read_bytes() == body

    got = fetch(
        f"{base}/models/latest?sig=secret", empty_dir(tmp_path / "b"), store=None, max_bytes=MiB
    )
    assert got.name == "latest"
    assert got.read_bytes() == b"redirected"

    got = fetch(f"{base}/", empty_dir(tmp_path / "c"), store=None, max_bytes=MiB)
    assert got.name == "download"


def test_fetch_http_error_status(tmp_path: Path, http_server: tuple[str, dict[str, Route]]) -> None:
    base, _ = http_server
    dest = empty_dir(tmp_path / "dest")
    with pytest.raises(ArtefactError) as caught:
        fetch(f"{base}/missing.tar.gz?token=hush", dest, store=None, max_bytes=MiB)
    assert f"{base}/missing.tar.gz" in caught.value.message
    assert "404" in caught.value.message
    assert "hush" not in caught.value.message
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("send_length", [True, False])
def test_fetch_http_over_the_limit(
    tmp_path: Path, http_server: tuple[str, dict[str, Route]], send_length: bool
) -> None:
    base, routes = http_server
    routes["/big.bin"] = Route(body=bytes(3 * MiB), send_length=send_length)
    dest = empty_dir(tmp_path / "dest")
    with pytest.raises(PayloadTooLarge):
        fetch(f"{base}/big.bin", dest, store=None, max_bytes=MiB)
    assert list(dest.iterdir()) == []


def test_fetch_http_unreachable(tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match=re.escape("cannot fetch http://127.0.0.1:9/")):
        fetch(
            "http://127.0.0.1:9/model.tar.gz",
            empty_dir(tmp_path / "dest"),
            store=None,
            max_bytes=MiB,
            timeout=5,
        )


# --- cache ------------------------------------------------------------------------------------


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_cache_materializes_an_archive_once(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    blob = tar_of(tree, tmp_path / "download", "w:gz")
    digest = file_digest(blob)
    cache = ArtefactCache(tmp_path / "cache", max_bytes=MiB)

    first = cache.materialize(blob, digest, "download")
    assert first == tmp_path / "cache" / digest
    assert snapshot(first) == snapshot(tree)
    assert os.access(first / "app.py", os.X_OK)
    (first / "marker").write_text("built once")

    assert cache.materialize(blob, digest, "download") == first
    assert (first / "marker").exists()
    assert leftovers(tmp_path / "cache") == []


def test_cache_materializes_a_single_file_under_its_name(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(5000))
    digest = file_digest(blob)
    cache = ArtefactCache(tmp_path / "cache", max_bytes=MiB)

    first = cache.materialize(blob, digest, "model.pb")
    assert [p.name for p in first.iterdir()] == ["model.pb"]
    assert (first / "model.pb").read_bytes() == blob.read_bytes()
    assert cache.materialize(blob, digest, "model.pb") == first

    # The same bytes deployed under another name are found under that name too.
    assert cache.materialize(blob, digest, "frozen.pb") == first
    assert sorted(p.name for p in first.iterdir()) == ["frozen.pb", "model.pb"]
    assert leftovers(tmp_path / "cache") == []


def test_cache_refuses_a_wrong_digest(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"bytes")
    cache = ArtefactCache(tmp_path / "cache", max_bytes=MiB)
    with pytest.raises(ArtefactError, match="expected"):
        cache.materialize(blob, "d" * 64, "model.pb")
    with pytest.raises(ArtefactError, match="sha256"):
        cache.materialize(blob, "../escape", "model.pb")
    assert not (tmp_path / "cache" / ("d" * 64)).exists()


def test_cache_failed_unpack_leaves_nothing(tmp_path: Path) -> None:
    blob = evil_tar(tmp_path / "evil.tar.gz", [(member("../x"), b"pwned")])
    cache = ArtefactCache(tmp_path / "cache", max_bytes=MiB)
    with pytest.raises(ArtefactError):
        cache.materialize(blob, file_digest(blob), "evil.tar.gz")
    assert list((tmp_path / "cache").iterdir()) == []
    assert not (tmp_path / "x").exists()


def test_cache_concurrent_materialize_agrees(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    for i in range(50):
        (tree / "model" / f"shard{i}.bin").write_bytes(os.urandom(2000))
    blob = tar_of(tree, tmp_path / "model.tar.gz", "w:gz")
    digest = file_digest(blob)
    caches = [ArtefactCache(tmp_path / "cache", max_bytes=MiB) for _ in range(8)]

    def build(cache: ArtefactCache) -> Path:
        return cache.materialize(blob, digest, "model.tar.gz")

    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(build, caches))

    assert set(paths) == {tmp_path / "cache" / digest}
    assert snapshot(paths[0]) == snapshot(tree)
    assert leftovers(tmp_path / "cache") == []
