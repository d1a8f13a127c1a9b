"""`eascmd test DESC.json` serves a description in the foreground with no installation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.installation import REPO, free_port, python_service, wait_for


def test_eascmd_test_serves_locally(tmp_path: Path) -> None:
    model = tmp_path / "model.txt"
    model.write_text("local model")
    desc = tmp_path / "service.json"
    desc.write_text(json.dumps(python_service("local_svc", model_path=str(model), token="t0k")))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eas_core.cli",
            "test",
            str(desc),
            "--port",
            str(port),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/predict/local_svc"
        answer = wait_for(
            lambda: httpx.post(url, content=b"whoami", headers={"Authorization": "t0k"}),
            timeout=30,
            what="the local service",
        )
        assert answer.status_code == 200
        assert json.loads(answer.content)["model"] == "local model"
        assert httpx.post(url, content=b"whoami").status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert b"Serving local_svc" in out


def test_eascmd_test_refuses_what_the_runtime_does_not_do(tmp_path: Path) -> None:
    desc = tmp_path / "service.json"
    desc.write_text(json.dumps(python_service("local_io_threads", metadata={"rpc.io_threads": 4})))
    result = subprocess.run(
        [sys.executable, "-m", "eas_core.cli", "test", str(desc), "--port", str(free_port())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("InvalidDescription: metadata.rpc.io_threads:"), result.stderr


def test_eascmd_test_runs_a_description_without_metadata(tmp_path: Path) -> None:
    document = python_service("local_bare")
    del document["metadata"]  # as PAI-EAS's local-debug example writes it
    desc = tmp_path / "service.json"
    desc.write_text(json.dumps(document))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "eas_core.cli", "test", str(desc), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/predict/local_bare"
        answer = wait_for(
            lambda: httpx.post(url, content=b"whoami"), timeout=90, what="the local service"
        )
        assert answer.status_code == 200, answer.text
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert b"Serving local_bare" in out
