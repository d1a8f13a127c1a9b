"""The README's first command: `eascmd server --demo` deploys the demo, prints a curl that
answers, and Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import psutil

from tests.support.installation import REPO, free_port, start_installation, wait_for

# What the wheel is built from (pyproject.toml's packages, and the files it reads).
PACKAGED = ("pyproject.toml", "README.md", "eas_core", "processors", "allspark", "eas_pipelines")


def test_demo_installation_answers_its_curl_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    running = start_installation(data, demo=True)
    out = tmp_path / "data-server.out"
    try:
        line = wait_for(
            lambda: re.search(r"^curl .*$", out.read_text(), re.M),
            timeout=90,
            what="the demo's curl line",
        )
        answer = subprocess.run(
            ["bash", "-c", line.group(0) + " -s"], capture_output=True, text=True, timeout=30
        )
        assert answer.stdout == "hello eas"
        assert "eascmd config -i" in out.read_text()
        records = [json.loads(p.read_text()) for p in (data / "instances").glob("*/record.json")]
        pids = [r["pid"] for r in records] + [running.pid("controller"), running.pid("gateway")]
        assert len(pids) == 3
    finally:
        running.process.send_signal(signal.SIGINT)
        running.process.wait(timeout=60)
    assert running.process.returncode == 0
    assert not [pid for pid in pids if _is_running(pid)]
    assert not list((data / "instances").glob("*/record.json"))
    running.client.close()


def test_demo_runs_from_an_installed_package(tmp_path: Path) -> None:
    """The wheel carries what --demo deploys: served from the wheel's files alone, started
    away from the source tree, the demo answers."""
    source = tmp_path / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__")
    for name in PACKAGED:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=skip)
        else:
            shutil.copy(REPO / name, source / name)
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = dist.glob("openeas-*.whl")
    installed = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    running = start_installation(
        data, demo=True, extra_env={"PYTHONPATH": str(installed)}, cwd=elsewhere
    )
    out = tmp_path / "data-server.out"
    try:
        line = wait_for(
            lambda: re.search(r"^curl .*$", out.read_text(), re.M),
            timeout=90,
            what="the demo's curl line",
        )
        answer = subprocess.run(
            ["bash", "-c", line.group(0) + " -s"], capture_output=True, text=True, timeout=30
        )
        assert answer.stdout == "hello eas"
        # Every part ran the wheel's code, not the checkout's.
        for part in ("controller", "gateway"):
            process = psutil.Process(running.pid(part))
            assert process.environ()["PYTHONPATH"] == str(installed)
            assert process.cwd() == str(elsewhere)
    finally:
        running.stop()
    assert running.process.returncode == 0


def test_installation_with_pipelines_serves_dagster_and_stops_it(tmp_path: Path) -> None:
    """`eascmd server --pipelines` (what `make serve` runs) adds `dagster dev` over
    workspace.yaml, connected to the installation; Ctrl-C stops its whole process tree."""
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    running = start_installation(data, extra_args=["--pipelines", "--dagster-port", str(port)])
    out = tmp_path / "data-server.out"
    try:
        wait_for(lambda: "Dagster UI" in out.read_text(), timeout=180, what="dagster dev")
        query = (
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"
        )
        answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30)
        jobs = {
            j["name"]
            for n in answer.json()["data"]["repositoriesOrError"]["nodes"]
            for j in n["jobs"]
        }
        assert {
            "heart_disease_deploy",
            "heart_disease_retrain_and_deploy",
            "heart_disease_rollback",
            "heart_disease_release",
        } <= jobs
        group = running.pid("pipelines")
        assert len(_group_members(group)) >= 2  # dagster dev and its webserver / daemon
    finally:
        running.process.send_signal(signal.SIGINT)
        running.process.wait(timeout=90)
    assert running.process.returncode == 0
    assert not _group_members(group)
    running.client.close()


def _is_running(pid: int) -> bool:
    """A live process (a zombie has ended: it only waits for its parent to reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group_members(group: int) -> list[int]:
    """The live processes of a process group."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == group and _is_running(process.pid):
                members.append(process.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members
