"""Bounds on descriptions, the instance environment, replayed signatures, deployment sources
and artefact permissions: plain values and real files, no processes."""

from __future__ import annotations

import os
import stat
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from eas_core.artefacts import ArtefactStore, pack_directory
from eas_core.artefacts.fetch import fetch
from eas_core.config import ControllerSettings
from eas_core.controller.api.auth import ReplayGuard
from eas_core.controller.sources import SourcePolicy
from eas_core.errors import ArtefactError, InvalidDescription, Unauthorized, Unavailable
from eas_core.spec.instance import check_environment, runtime_environment
from eas_core.spec.limits import MAX_DOCUMENT_BYTES, decode_json, document_problems
from eas_core.spec.service import parse_description
from tests.support.installation import wait_for

BASE: dict[str, Any] = {
    "name": "svc",
    "processor_type": "python",
    "processor_path": "/x",
    "processor_entry": "app.py",
    "metadata": {"instance": 1},
}


def refusal(**change: Any) -> str:
    with pytest.raises(InvalidDescription) as refused:
        parse_description({**BASE, **change})
    return refused.value.message


@pytest.mark.parametrize(
    ("change", "starts"),
    [
        ({"token": "a\x00b"}, "token: must not contain control characters"),
        ({"token": "a b"}, "token: must be visible ASCII"),
        ({"token": "t" * 257}, "token: String should have at most 256 characters"),
        ({"model_config": "a\x00"}, "model_config: must not contain control characters"),
        ({"model_config": "x" * 70_000}, "model_config: 70000 characters, more than 65536"),
        ({"model_config": {"k": "v" * 40_000, "l": "w" * 40_000}}, "model_config: 80015 bytes"),
        ({"processor_path": "/a\nb"}, "processor_path: must not contain control characters"),
        ({"processor_entry": "e" * 5000}, "processor_entry: String should have at most 4096"),
        ({"metadata": {"instance": 1, "cpu": float("nan")}}, "metadata.cpu: must be a finite"),
        ({"metadata": {"instance": 1, "memory": 2**70}}, "metadata.memory: integer out of range"),
        ({"metadata": {"instance": 1, "cpu": 4096}}, "metadata.cpu: Input should be less"),
        ({"metadata": {"instance": 1, "resource": "r" * 65}}, "metadata.resource: String should"),
        ({"metadata": {"instance": 1, "note\x1b": 1}}, "metadata.'note\\x1b': keys must be"),
        ({"extra": {"deep": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}, "extra.deep"),
        ({"extra": list(range(300))}, "extra: 300 items, more than 256"),
        ({"extra": "x" * 65_537}, "extra: 65537 characters"),
    ],
)
def test_description_strings_numbers_and_shape_are_bounded(
    change: dict[str, Any], starts: str
) -> None:
    assert refusal(**change).startswith(starts)


def test_free_text_keeps_line_breaks_and_a_whole_document_has_a_size_bound() -> None:
    parse_description({**BASE, "model_config": "a = 1\n\tb = 2\r\n"})
    many = {f"k{i}": "v" * 1100 for i in range(255)}
    message = refusal(extra=many)
    assert message.startswith("description: ") and f"limit of {MAX_DOCUMENT_BYTES}" in message


def test_json_is_decoded_strictly() -> None:
    for text, expected in (
        ('{"cpu": NaN}', "NaN is not a JSON number"),
        ('{"cpu": -Infinity}', "-Infinity is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (b"\xff{}", "not UTF-8"),
    ):
        with pytest.raises(ValueError, match=expected):
            decode_json(text)
    assert document_problems(decode_json('{"a": [1, 2.5, "x", null, true]}')) == []


def test_instance_environment_refuses_what_no_process_can_be_started_with() -> None:
    description = parse_description(BASE)
    env = runtime_environment(description, version=1, token="tok", max_body_bytes=1)
    assert env["EAS_TOKEN"] == "tok"
    with pytest.raises(InvalidDescription, match=r"^token: contains a NUL byte"):
        check_environment({**env, "EAS_TOKEN": "a\x00"})
    with pytest.raises(InvalidDescription, match=r"^model_config: 131089 bytes"):
        check_environment({**env, "EAS_MODEL_CONFIG": "x" * (128 * 1024)})


def test_replay_guard_refuses_a_nonce_twice_and_is_bounded() -> None:
    guard = ReplayGuard(capacity=2, window=0.05)
    guard.remember("key", "nonce-one-aaaaaaaaaa")
    guard.remember("other", "nonce-one-aaaaaaaaaa")  # per key
    with pytest.raises(Unauthorized, match="replayed"):
        guard.remember("key", "nonce-one-aaaaaaaaaa")
    with pytest.raises(Unavailable, match="more than 2 signed requests"):
        guard.remember("key", "nonce-two-aaaaaaaaaa")
    # Past the window the old nonces are forgotten (their signatures are stale by then).
    deadline = guard.expiry[("other", "nonce-one-aaaaaaaaaa")]
    wait_for(lambda: time.monotonic() > deadline, interval=0.01, what="the window to pass")
    guard.remember("key", "nonce-two-aaaaaaaaaa")
    assert list(guard.expiry) == [("key", "nonce-two-aaaaaaaaaa")]


@pytest.fixture
def policy(tmp_path: Path) -> SourcePolicy:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    data = tmp_path / "allowed" / "data"  # an operator who allows the data dir's parent
    data.mkdir()
    (data / "credentials.json").write_text("{}")
    settings = ControllerSettings(
        data_dir=data,
        controller_port=18000,
        gateway_port=18080,
        artefact_local_roots=[allowed],
        artefact_url_hosts=["*", "127.0.0.1:9999"],
    )
    return SourcePolicy.from_settings(settings)


def test_sources_local_paths_stay_under_the_roots_and_out_of_the_data_dir(
    policy: SourcePolicy, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "model.bin").write_text("w")
    policy.check_source(str(allowed / "model.bin"))
    policy.check_source(f"file://{allowed / 'model.bin'}")
    outside = tmp_path / "outside.bin"
    outside.write_text("w")
    with pytest.raises(ArtefactError, match="EAS_ARTEFACT_LOCAL_ROOTS"):
        policy.check_source(str(outside))
    with pytest.raises(ArtefactError, match="data directory"):
        policy.check_source(str(allowed / "data" / "credentials.json"))
    # A symlink is judged by where it leads, when named and when met while packing.
    (allowed / "link.json").symlink_to(allowed / "data" / "credentials.json")
    with pytest.raises(ArtefactError, match="data directory"):
        policy.check_source(str(allowed / "link.json"))
    package = allowed / "package"
    package.mkdir()
    (package / "app.py").write_text("")
    (package / "creds").symlink_to(allowed / "data")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArtefactError, match="data directory"):
        fetch(str(package), dest, store=None, max_bytes=1 << 20, guard=policy)
    assert not any(dest.iterdir())


def test_sources_urls_need_a_public_or_allowed_host_and_never_our_ports(
    policy: SourcePolicy,
) -> None:
    policy.check_source("http://127.0.0.1:9999/model.tar.gz")  # allowed by the operator
    policy.check_source("eas://artefacts/" + "0" * 64 + "/m.bin")
    policy.check_source("s3://bucket/model")
    for url, expected in (
        ("http://127.0.0.1:9998/m", "not a host deployments may fetch from"),
        ("http://169.254.169.254/latest/meta-data/", "not a host deployments may fetch from"),
        ("http://10.0.0.1/m", "not a host deployments may fetch from"),
        ("http://localhost:18000/api/v1/services", "own control API or gateway"),
        ("http://[::1]:18080/api/predict/x", "own control API or gateway"),
        ("http://no-such-host.invalid/m", "does not resolve"),
    ):
        with pytest.raises(ArtefactError, match=expected):
            policy.check_source(url)


def test_artefact_copies_never_loosen_permissions(tmp_path: Path) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    private = tmp_path / "private.bin"
    private.write_text("secret weights")
    private.chmod(0o600)
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    store = ArtefactStore(tmp_path / "store")
    assert mode(store.path_of(store.put_file(private).uri)) == 0o600
    assert mode(store.path_of(store.put_file(tool).uri)) == 0o755
    # Uploads carry no permissions: this user only.
    with store.receive("up.bin", max_bytes=100) as upload:
        upload.write(b"uploaded")
        ref = upload.commit()
    assert mode(store.path_of(ref.uri)) == 0o600
    # A fetched copy and a packed directory keep a 0600 file at 0600.
    dest = tmp_path / "fetched"
    dest.mkdir()
    assert mode(fetch(str(private), dest, store=None, max_bytes=1000)) == 0o600
    tree = tmp_path / "tree"
    tree.mkdir()
    os.link(private, tree / "weights.bin")
    with tarfile.open(pack_directory(tree, tmp_path / "tree.tar", 1000)) as tar:
        assert tar.getmember("weights.bin").mode == 0o600
