"""The control plane against hostile or careless callers, through its real entry points: the
control API over HTTP (raw sockets where the bytes matter), `eascmd`, real processes and the
real SQLite store. Rows "from an older release" are written with sqlite3 into the store, as
such a release would have left them."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from eas_core.auth.keys import AccessKey, sign_request
from eas_core.errors import Conflict, InvalidDescription
from eas_core.sdk import ServiceStatus
from tests.support.installation import (
    Installation,
    python_service,
    start_installation,
    wait_for,
)
from tests.support.load import SteadyLoad

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """An installation of its own: these tests leave broken rows in its store."""
    data_dir = tmp_path_factory.mktemp("hardening") / "data"
    data_dir.mkdir()
    running = start_installation(data_dir)
    yield running
    running.stop()


def names(installation: Installation) -> set[str]:
    return {s.service_name for s in installation.client.list_services()}


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


def signed(installation: Installation, method: str, path: str, body: bytes = b"") -> dict[str, str]:
    key = installation.client.key
    return sign_request(AccessKey(key.id, key.secret), method, path, "", body)


def raw_exchange(port: int, head: bytes, body_part: bytes = b"") -> bytes:
    """Send a request head and part of its body, then read what the server answers first.
    A server that waits for the rest of the body never answers: the timeout fails the test."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body_part)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- descriptions are bounded ------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"token": "abc\x00def"}, "token:"),
        ({"token": "t" * 300}, "token:"),
        ({"model_config": "k=v\x00"}, "model_config:"),
        ({"model_config": "x" * (200 * 1024)}, "model_config:"),
        ({"model_config": {"weights": "w" * (100 * 1024)}}, "model_config"),
        ({"labels": {"team\x07": "a"}}, "labels"),
        ({"notes": "n" * (300 * 1024)}, "notes:"),
    ],
)
def test_nul_or_oversized_strings_are_refused_naming_the_field(
    installation: Installation, unique_name: str, change: dict[str, Any], field: str
) -> None:
    before = names(installation)
    with pytest.raises(InvalidDescription) as refused:
        installation.client.create_service(python_service(unique_name, instances=0, **change))
    assert field in refused.value.message, refused.value.message
    assert names(installation) == before


def test_one_broken_service_never_stops_the_others(
    isolated: Installation, cleanup: Callable[..., str]
) -> None:
    """Rows written before descriptions were bounded (a NUL token, a model_config over the
    kernel's limit for one variable) fail alone; everything else keeps being reconciled."""
    client = isolated.client
    client.create_service(python_service(cleanup("healthy", client), instances=1))
    client.wait_until_running("healthy", timeout=60)
    token = client.describe_service("healthy").access_token
    for name in ("nul_token", "huge_config"):
        client.create_service(python_service(name, instances=0))
    with sqlite3.connect(isolated.data_dir / "eas.db") as db:
        db.execute(
            "UPDATE services SET token = ?, instance_count = 1 WHERE name = 'nul_token'",
            ("abc\x00def",),
        )
        document = python_service("huge_config", instances=1, model_config="x" * (200 * 1024))
        db.execute(
            "UPDATE services SET document = ?, instance_count = 1 WHERE name = 'huge_config'",
            (json.dumps(document),),
        )
    victim = client.list_instances("healthy")[0].instance_name
    record = json.loads((isolated.data_dir / "instances" / victim / "record.json").read_text())
    os.kill(record["pid"], signal.SIGKILL)
    # The healthy service's instance is restarted on a new port and routed to again.
    wait_for(
        lambda: (
            isolated.predict("healthy", b"echo:back", token).content == b"back"
            and client.list_instances("healthy")[0].restarts >= 1
        ),
        timeout=60,
        what="the healthy service to serve from its restarted instance",
    )
    for name, field in (("nul_token", "token"), ("huge_config", "model_config")):
        info = wait_for(
            lambda n=name: (d := client.describe_service(n)).status == ServiceStatus.FAILED and d,
            timeout=30,
            what=f"{name} to be Failed",
        )
        assert field in info.message, info.message
    listed = {r["ServiceName"]: r for r in isolated.eascmd_json("ls")}
    assert listed["nul_token"]["Status"] == "Failed" and "token" in listed["nul_token"]["Message"]
    assert "Failed" in isolated.eascmd("ls").stdout
    # Deleting the broken ones works (it used to stick in Deleting).
    for name in ("nul_token", "huge_config"):
        isolated.eascmd("delete", name, "-y")
        assert name not in names(isolated)


def test_related_name_over_the_limit_is_refused_and_nothing_stored(
    installation: Installation, workdir: Path, cleanup: Callable[..., str]
) -> None:
    name = cleanup("long_" + "n" * 55)  # 60 characters: a related name would have 69
    installation.client.create_service(python_service(name, instances=0))
    before = names(installation)
    result = installation.eascmd(
        "create",
        str(write(workdir / "green.json", python_service(name, instances=0))),
        "-r",
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("InvalidDescription: name:"), result.stderr
    assert "at most 54 characters" in result.stderr
    assert names(installation) == before
    assert installation.eascmd("ls").returncode == 0


def test_listing_shows_a_row_it_cannot_summarise_as_failed(isolated: Installation) -> None:
    legacy = "legacy_" + "x" * 61  # 68 characters, as `create -r` used to store
    document = python_service(legacy, instances=0)
    now = "2024-01-01 00:00:00.000000"
    with sqlite3.connect(isolated.data_dir / "eas.db") as db:
        db.execute(
            "INSERT INTO services (name, token, state, instance_count, current_version, "
            "latest_version, revision, related_to, weight, rollback, message, document, "
            "created_at, updated_at) VALUES (?, 'tok', 'running', 0, 1, 1, 0, NULL, NULL, "
            "NULL, '', ?, ?, ?)",
            (legacy, json.dumps(document), now, now),
        )
        db.execute(
            "INSERT INTO versions (service, version, document, artefacts, created_at) "
            "VALUES (?, 1, ?, '{}', ?)",
            (legacy, json.dumps(document), now),
        )
    listed = {r["ServiceName"]: r for r in isolated.eascmd_json("ls")}
    assert listed[legacy]["Status"] == "Failed"
    assert "name:" in listed[legacy]["Message"]
    assert legacy in isolated.eascmd("ls").stdout
    isolated.eascmd("delete", legacy, "-y")
    assert legacy not in names(isolated)


# -- bodies: authenticated first, bounded, streamed --------------------------------------------


def test_unknown_access_key_is_refused_before_the_body_is_read(installation: Installation) -> None:
    headers = sign_request(AccessKey("LTEASNOBODY", "secret"), "POST", "/api/v1/services", "", b"")
    headers.update({"Content-Length": str(400 * MiB), "Content-Type": "application/json"})
    answer = raw_exchange(
        installation.controller_port,
        request_head("POST", "/api/v1/services", headers),
        b"{" + b" " * 65536,
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_json_body_over_the_limit_is_refused_with_413_before_reading(
    installation: Installation,
) -> None:
    headers = signed(installation, "POST", "/api/v1/services")
    headers.update({"Content-Length": str(2 * MiB), "Content-Type": "application/json"})
    answer = raw_exchange(
        installation.controller_port, request_head("POST", "/api/v1/services", headers), b"{"
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"1048576" in answer or b"413" in answer
    # Without a Content-Length, the body is cut off at the limit as it streams in.
    headers = signed(installation, "POST", "/api/v1/services")
    headers.update({"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    chunk = b" " * (64 * 1024)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17))
    answer = raw_exchange(
        installation.controller_port, request_head("POST", "/api/v1/services", headers), body
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_upload_streams_with_flat_memory_on_both_sides(
    installation: Installation, tmp_path: Path
) -> None:
    big = tmp_path / "weights.bin"
    with big.open("wb") as f:  # 300 MB, written sparse: cheap to make, read as zeros
        f.truncate(300 * 1000 * 1000)
    controller = psutil.Process(installation.pid("controller"))
    baseline = controller.memory_info().rss
    process = psutil.Popen(
        [*installation.eascmd_command(), "upload", str(big), "--json"],
        env=installation.cli_env(),
        stdout=-1,
        stderr=-1,
    )
    peaks = {"controller": 0, "client": 0}
    while process.poll() is None:
        try:
            peaks["controller"] = max(peaks["controller"], controller.memory_info().rss)
            peaks["client"] = max(peaks["client"], process.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    out, err = process.communicate()
    assert process.returncode == 0, err
    result = json.loads(out)
    assert result["size"] == 300 * 1000 * 1000
    with big.open("rb") as f:
        assert result["digest"] == hashlib.file_digest(f, "sha256").hexdigest()
    growth = (peaks["controller"] - baseline) / MiB
    print(f"\ncontroller RSS growth {growth:.1f} MiB, client peak {peaks['client'] / MiB:.1f} MiB")
    assert growth < 64, f"the controller grew by {growth:.0f} MiB for a 300 MB upload"
    assert peaks["client"] < 200 * MiB, f"eascmd held {peaks['client'] / MiB:.0f} MiB"
    stored = installation.data_dir / "artefacts" / result["digest"]
    for path in stored.iterdir():
        path.unlink()
    stored.rmdir()


def test_upload_whose_body_does_not_match_its_signed_digest_is_not_kept(
    installation: Installation,
) -> None:
    query = "filename=tampered.bin"
    key = installation.client.key
    headers = sign_request(AccessKey(key.id, key.secret), "POST", "/api/v1/artefacts", query, b"A")
    answer = httpx.post(
        f"{installation.controller_url}/api/v1/artefacts?{query}", content=b"B", headers=headers
    )
    assert answer.status_code == 401
    assert "x-eas-content-sha256" in answer.json()["message"]
    assert not (installation.data_dir / "artefacts" / hashlib.sha256(b"B").hexdigest()).exists()


def test_replayed_signature_is_refused(installation: Installation) -> None:
    headers = signed(installation, "GET", "/api/v1/services")
    url = f"{installation.controller_url}/api/v1/services"
    assert httpx.get(url, headers=headers).status_code == 200
    replay = httpx.get(url, headers=headers)
    assert replay.status_code == 401
    assert "replayed" in replay.json()["message"]
    # A signature without a nonce (the scheme before replays were refused) is refused.
    del headers["x-eas-nonce"]
    assert httpx.get(url, headers=headers).status_code == 401


# -- the controller's restarts never stop instances --------------------------------------------


def test_sigterm_to_the_controller_keeps_instances_and_traffic(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    running = start_installation(data)
    try:
        running.client.create_service(python_service("steady", instances=2))
        running.client.wait_until_running("steady", timeout=60)
        token = running.client.describe_service("steady").access_token
        records = [json.loads(p.read_text()) for p in (data / "instances").glob("*/record.json")]
        pids = sorted(r["pid"] for r in records)
        old = running.pid("controller")
        url = f"{running.gateway_url}/api/predict/steady"
        with SteadyLoad(url, token, b"echo:up", threads=2, max_seconds=90) as load:
            load.next_calls(20)
            os.kill(old, signal.SIGTERM)
            wait_for(
                lambda: (
                    running.pid("controller") != old
                    and httpx.get(f"{running.controller_url}/api/v1/health").status_code == 200
                ),
                timeout=60,
                what="the controller to be restarted",
            )
            load.next_calls(40)  # the instances keep answering under the new controller
        answers = load.result.answers
        print(f"\nrequests={len(answers)} failures={len(load.result.failures)} across SIGTERM")
        assert answers and not load.result.failures, load.result.failures[:5]
        after = [json.loads(p.read_text()) for p in (data / "instances").glob("*/record.json")]
        assert sorted(r["pid"] for r in after) == pids
        assert all(psutil.pid_exists(pid) for pid in pids)
        parts = [running.pid("controller"), running.pid("gateway")]
    finally:
        running.stop()
    # Stopping the whole installation still stops everything, adopted instances included.
    for pid in [*pids, *parts]:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", pid
    assert not list((data / "instances").glob("*/record.json"))


# -- files are private -------------------------------------------------------------------------


def test_data_dir_database_and_credentials_are_private(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    data = installation.data_dir
    assert mode(data) == 0o700
    for name in ("eas.db", "eas.db-wal", "eas.db-shm", "credentials.json", "internal.token"):
        if (data / name).exists() or name == "eas.db":
            assert mode(data / name) == 0o600, name
    assert mode(installation.config_path) == 0o600
    secret = workdir / "model.bin"
    secret.write_text("private weights")
    secret.chmod(0o600)
    installation.client.create_service(
        python_service(unique_name, instances=0, model_path=str(secret))
    )
    artefact = installation.client.list_versions(unique_name)[0].artefacts["model"]
    stored = data / "artefacts" / artefact.digest / artefact.filename
    assert mode(stored) == 0o600


# -- deployment sources ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loopback_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("served")
    (root / "model.bin").write_text("weights")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_default_sources_refuse_the_data_dir_and_loopback(
    tmp_path: Path, loopback_server: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "model.bin").write_text("weights")

    def refused(running: Installation, model_path: str) -> str:
        with pytest.raises(InvalidDescription) as refusal:
            running.client.create_service(
                python_service("probe", instances=0, model_path=model_path)
            )
        assert refusal.value.message.startswith("model_path:"), refusal.value.message
        return refusal.value.message

    # Nothing set: the home directory and the installation's directory only, public hosts only.
    running = start_installation(data, default_sources=True)
    try:
        assert "data directory" in refused(running, str(data / "credentials.json"))
        assert "EAS_ARTEFACT_LOCAL_ROOTS" in refused(running, str(tmp_path / "model.bin"))
        assert "not a host deployments may fetch from" in refused(
            running, f"{loopback_server}/model.bin"
        )
        assert running.client.list_services() == []
    finally:
        running.stop()
    # Even an operator who allows all of the data dir's parent never opens the data dir, and
    # the installation's own ports stay closed.
    running = start_installation(
        data,
        default_sources=True,
        extra_env={"EAS_ARTEFACT_LOCAL_ROOTS": json.dumps([str(tmp_path.parent)])},
    )
    try:
        for model_path, expected in (
            (str(data / "credentials.json"), "data directory"),
            (f"file://{data / 'eas.db'}", "data directory"),
            (f"http://localhost:{running.controller_port}/api/v1/services", "own control API"),
        ):
            assert expected in refused(running, model_path)
        assert running.client.list_services() == []
    finally:
        running.stop()


def test_allowed_sources_still_never_reach_the_installation(
    installation: Installation, unique_name: str, workdir: Path, loopback_server: str
) -> None:
    """The tests' installation allows tmp directories and loopback servers; its own data dir
    (through a symlink too) and its own ports stay out of reach."""
    package = workdir / "package"
    package.mkdir()
    (package / "app.py").write_text("print('hi')\n")
    (package / "stolen.json").symlink_to(installation.data_dir / "credentials.json")
    link = workdir / "creds.json"
    link.symlink_to(installation.data_dir / "credentials.json")
    for model_path, expected in (
        (str(link), "data directory"),
        (str(package), "data directory"),
        (f"{installation.controller_url}/api/v1/services", "own control API"),
        (f"{installation.gateway_url}/api/builtin/ping", "own control API or gateway"),
    ):
        with pytest.raises(InvalidDescription) as refused:
            installation.client.create_service(
                python_service(unique_name, instances=0, model_path=model_path)
            )
        assert refused.value.message.startswith("model_path:"), refused.value.message
        assert expected in refused.value.message, refused.value.message
    assert unique_name not in names(installation)
    # What the operator allowed works.
    installation.client.create_service(
        python_service(unique_name, instances=0, model_path=f"{loopback_server}/model.bin")
    )


# -- small ones ----------------------------------------------------------------------------------


def test_fuzzer_findings_are_400s_naming_the_field(
    installation: Installation, unique_name: str
) -> None:
    installation.client.create_service(python_service(unique_name, instances=0))
    base = f"{installation.controller_url}/api/v1/services/{unique_name}"

    def call(method: str, suffix: str, body: bytes = b"") -> httpx.Response:
        path = f"/api/v1/services/{unique_name}{suffix}"
        headers = signed(installation, method, path, body)
        headers["content-type"] = "application/json"
        return httpx.request(method, base + suffix, content=body, headers=headers)

    cases = [
        ("GET", f"/versions/{2**64}", b"", "version"),
        ("POST", "/version", json.dumps({"version": 10**30}).encode(), "version"),
        ("PUT", "", b"[" * 100_000 + b"]" * 100_000, "nested"),
        ("PUT", "", b'{"metadata": {"cpu": Infinity}}', "Infinity"),
        ("PUT", "", b'{"metadata": {"cpu": 1e999}}', "metadata.cpu"),
        ("PUT", "", b'{"metadata": {"memory": 1' + b"0" * 40 + b"}}", "metadata.memory"),
    ]
    for method, suffix, body, field in cases:
        answer = call(method, suffix, body)
        assert answer.status_code == 400, (suffix, answer.status_code, answer.text[:200])
        assert field in answer.json()["message"], answer.json()["message"]


def test_changes_while_deleting_are_refused_with_409(
    installation: Installation, unique_name: str
) -> None:
    client = installation.client
    client.create_service(python_service(unique_name, instances=1))
    client.wait_until_running(unique_name, timeout=60)
    client.delete_service(unique_name)
    for change in (
        lambda: client.modify_service(unique_name, {"metadata": {"instance": 2}}),
        lambda: client.modify_service(unique_name, {"model_config": "other"}),
        lambda: client.switch_version(unique_name, 1),
        lambda: client.stop_service(unique_name),
        lambda: client.start_service(unique_name),
    ):
        with pytest.raises(Conflict, match="Deleting"):
            change()
    client.wait_until_deleted(unique_name, timeout=60)


def released_pair(installation: Installation, original: str, workdir: Path) -> str:
    """An original and its related service, created with eascmd; returns the related name."""
    installation.client.create_service(python_service(original, instances=1))
    installation.client.wait_until_running(original, timeout=60)
    installation.eascmd(
        "create", str(write(workdir / "green.json", python_service(original, instances=1))), "-r"
    )
    return next(n for n in names(installation) if n.startswith(original + "_"))


def test_release_prints_both_names(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    related = released_pair(installation, unique_name, workdir)
    released = installation.eascmd("release", related, "-w", "20", "-y")
    assert f"Released 20% of [{unique_name}]'s traffic to [{related}]" in released.stderr


def test_deleting_a_released_original_exits_zero_saying_what_happened(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    original = unique_name
    related = released_pair(installation, original, workdir)
    token = installation.client.describe_service(original).access_token
    installation.eascmd("release", related, "-w", "100", "-y")
    deleted = installation.eascmd("delete", original, "-y", timeout=60)
    assert f"Service {original} deleted: its instances are stopped" in deleted.stderr
    assert f"serving its released related service by {related}" in deleted.stderr
    assert not installation.client.list_instances(original)
    assert installation.predict(original, b"echo:still", token).content == b"still"
