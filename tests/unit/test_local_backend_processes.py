"""The local backend's view of instance processes, with real processes: which ones are ours,
and what a starting controller does with those it finds (adopt, or stop)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from eas_core.controller.backends import processes
from eas_core.controller.backends.local import InstanceRecord, LocalBackend
from tests.support.installation import wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever still runs at the end is killed."""
    children: list[subprocess.Popen[bytes]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()


def spawn(
    children: list[subprocess.Popen[bytes]], data_dir: Path, instance_id: str
) -> subprocess.Popen[bytes]:
    """A process with the environment the backend gives an instance of ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
    env["EAS_INSTANCE_ID"] = instance_id
    env["EAS_INSTANCE_DIR"] = str(data_dir / "instances" / instance_id)
    child = subprocess.Popen(SLEEPER, env=env, start_new_session=True)
    children.append(child)
    wait_for(
        lambda: (
            processes.instance_of(psutil.Process(child.pid), (data_dir / "instances").resolve())
            == instance_id
        ),
        timeout=10,
        interval=0.01,
        what="the child to run with its environment",
    )
    return child


def write_record(data_dir: Path, instance_id: str, **fields: object) -> Path:
    directory = data_dir / "instances" / instance_id
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "id": instance_id,
        "service": "svc",
        "version": 1,
        "revision": 1,
        "cpu": 0.1,
        "memory_mb": 64,
        "gpu": 0,
        "env": {},
        "port": 1,
        "placed": True,
        **fields,
    }
    path = directory / "record.json"
    path.write_text(json.dumps(record))
    return path


def backend(data_dir: Path) -> LocalBackend:
    return LocalBackend(data_dir, host="127.0.0.1", cpu=4, memory_mb=4096)


def test_is_instance_process_checks_life_and_environment(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    root = (tmp_path / "instances").resolve()
    child = spawn(started, tmp_path, "svc-1-aaaa")
    assert processes.is_instance_process(child.pid, "svc-1-aaaa", root)
    assert not processes.is_instance_process(child.pid, "svc-1-bbbb", root)
    # The same id under another installation's data directory is not ours.
    assert not processes.is_instance_process(child.pid, "svc-1-aaaa", tmp_path / "other")
    assert not processes.is_instance_process(os.getpid(), "svc-1-aaaa", root)
    child.send_signal(signal.SIGKILL)
    # Dead but not yet reaped: a zombie is not alive.
    wait_for(
        lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE,
        timeout=10,
        interval=0.01,
        what="a zombie",
    )
    assert not processes.is_instance_process(child.pid, "svc-1-aaaa", root)


def test_a_starting_backend_adopts_unrecorded_pids_and_stops_strays(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    data_dir = tmp_path / "data"
    # Started, its record written with the intent to start, its pid never recorded.
    launched = spawn(started, data_dir, "svc-1-1111")
    write_record(data_dir, "svc-1-1111", pid=None, launching=True)
    # Started, and not even a record: the controller died right after starting it.
    stray = spawn(started, data_dir, "svc-1-2222")
    (data_dir / "instances" / "svc-1-2222").mkdir(parents=True)
    # Recorded with its pid: adopted as before.
    recorded = spawn(started, data_dir, "svc-1-3333")
    write_record(data_dir, "svc-1-3333", pid=recorded.pid, ready_seen=True)
    # Its process died while no controller watched.
    write_record(data_dir, "svc-1-4444", pid=launched.pid + 10**6, ready_seen=True)
    # Another installation's instance on the same machine is none of our business.
    other = spawn(started, tmp_path / "other", "svc-1-2222")

    local = backend(data_dir)
    try:
        assert stray.poll() is not None
        assert not (data_dir / "instances" / "svc-1-2222").exists()
        assert other.poll() is None and launched.poll() is None and recorded.poll() is None
        adopted = local.records["svc-1-1111"]
        assert adopted.pid == launched.pid and not adopted.launching
        assert adopted.started_at is not None
        on_disk = json.loads((data_dir / "instances" / "svc-1-1111" / "record.json").read_text())
        assert on_disk["pid"] == launched.pid
        assert local.records["svc-1-3333"].pid == recorded.pid
        died = local.records["svc-1-4444"]
        assert died.pid is None and died.restarts == 1
        assert died.reason == "process ended while the controller was down"
    finally:
        local.shutdown(stop_instances=True)
    assert launched.poll() is not None and recorded.poll() is not None
    assert other.poll() is None


def test_a_record_with_no_process_behind_its_intent_is_started_again(tmp_path: Path) -> None:
    write_record(tmp_path, "svc-1-5555", pid=None, launching=True)
    local = backend(tmp_path)
    try:
        record = local.records["svc-1-5555"]
        # Not counted as a restart: it may never have started at all.
        assert record.pid is None and not record.launching and record.restarts == 0
    finally:
        local.shutdown(stop_instances=False)


def test_records_of_a_newer_version_are_read(tmp_path: Path) -> None:
    write_record(tmp_path, "svc-1-6666", pid=None, written_by_a_newer_version=True)
    local = backend(tmp_path)
    try:
        assert isinstance(local.records["svc-1-6666"], InstanceRecord)
    finally:
        local.shutdown(stop_instances=False)


def test_instance_and_log_directories_are_private(tmp_path: Path) -> None:
    (tmp_path / "instances").mkdir(mode=0o755)
    local = backend(tmp_path)
    try:
        for name in ("instances", "logs"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o700, name
    finally:
        local.shutdown(stop_instances=False)


def test_an_instance_gets_as_many_library_threads_as_it_has_cpus() -> None:
    from eas_core.controller.backends.local import thread_limits

    assert thread_limits(1) == {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    assert thread_limits(0.1)["OMP_NUM_THREADS"] == "1"  # a share of a CPU is one thread
    assert thread_limits(2.5)["OMP_NUM_THREADS"] == "3"
