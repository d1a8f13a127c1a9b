"""One packer for every directory the platform ships: the same tree gives the same bytes."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import pytest

from eas_core.artefacts import pack_directory
from eas_core.errors import ArtefactError, PayloadTooLarge


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "app.py").write_text("print('hi')\n")
    (root / "sub" / "weights.bin").write_bytes(b"\x01" * 100)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (root / "sub" / "stale.pyc").write_bytes(b"\0")
    return root


def test_a_gz_destination_is_compressed_and_carries_no_time(tree: Path, tmp_path: Path) -> None:
    one = pack_directory(tree, tmp_path / "one.tar.gz").read_bytes()
    os.utime(tree / "app.py", (1, 1))
    two = pack_directory(tree, tmp_path / "two.tar.gz").read_bytes()
    assert one == two
    assert (
        gzip.decompress(one)[:100]
        == (pack_directory(tree, tmp_path / "plain.tar").read_bytes()[:100])
    )


def test_excluded_names_leave_out_files_and_whole_directories(tree: Path, tmp_path: Path) -> None:
    packed = pack_directory(tree, tmp_path / "t.tar", exclude=("__pycache__", "*.pyc"))
    with tarfile.open(packed) as tar:
        assert tar.getnames() == ["app.py", "sub", "sub/weights.bin"]
    with tarfile.open(pack_directory(tree, tmp_path / "all.tar")) as tar:
        assert "sub/stale.pyc" in tar.getnames()


def test_over_the_limit_nothing_is_left(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge, match="more than 50 bytes"):
        pack_directory(tree, tmp_path / "t.tar.gz", 50)
    assert not (tmp_path / "t.tar.gz").exists()


def test_every_path_read_is_shown_to_the_check(tree: Path, tmp_path: Path) -> None:
    def refuse_weights(path: Path) -> None:
        if path.name == "weights.bin":
            raise ArtefactError(f"{path} is not allowed")

    with pytest.raises(ArtefactError, match=r"weights\.bin is not allowed"):
        pack_directory(tree, tmp_path / "t.tar", check_path=refuse_weights)
    assert not (tmp_path / "t.tar").exists()
