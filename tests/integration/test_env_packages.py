"""A Python package carrying its own ENV interpreter, with no OpenEAS installed in it.

The ENV is a real virtualenv made at test time (``python -m venv --copies``, so no link
leads outside the package; no pip: the processors here use the standard library only).
Deployed through a real installation, and served by `eascmd test`, its processor imports
``allspark`` from the runtime's stub.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.installation import REPO, Installation, free_port, start_installation, wait_for

APP = """
import importlib.util
import json
import sys

import allspark


class EnvProcessor(allspark.BaseProcessor):
    def initialize(self):
        with open(self.get_model_path()) as model:
            self.model = model.read()

    def process(self, data):
        if data == b"fail":
            raise ValueError("asked to fail")
        answer = {
            "echo": data.decode(),
            "model": self.model,
            "config": self.get_model_config(),
            "python": sys.executable,
            "openeas": importlib.util.find_spec("eas_core") is not None,
        }
        return json.dumps(answer).encode(), 200

    def process_batch(self, data_list):
        return [(b"batched:" + data, 200) for data in data_list]


if __name__ == "__main__":
    EnvProcessor(worker_threads=2).run()
"""


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("eas-env") / "data"
    data_dir.mkdir()
    running = start_installation(data_dir)
    yield running
    running.stop()


def env_package(root: Path, *, python_script: str | None = None) -> Path:
    """A processor package with app.py and an ENV: a fresh venv, or a fake ENV/bin/python."""
    package = root / "package"
    package.mkdir(parents=True)
    (package / "app.py").write_text(APP)
    if python_script is None:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--copies", str(package / "ENV")],
            check=True,
            timeout=120,
        )
    else:
        bin_dir = package / "ENV" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").write_text(python_script)
        (bin_dir / "python").chmod(0o755)
    (root / "model.txt").write_text("env model")
    return package


def description(name: str, package: Path, **metadata: Any) -> dict[str, Any]:
    return {
        "name": name,
        "processor_type": "python",
        "processor_path": str(package),
        "processor_entry": "app.py",
        "model_path": str(package.parent / "model.txt"),
        "model_config": {"threshold": 0.5},
        "metadata": {"instance": 1, "cpu": 0.1, "memory": 128, **metadata},
    }


def test_env_without_openeas_serves_through_the_stub(
    installation: Installation, tmp_path: Path
) -> None:
    package = env_package(tmp_path)
    installation.client.create_service(description("env_stub", package))
    installation.client.wait_until_running("env_stub", timeout=120)
    token = str(installation.client.describe_service("env_stub").access_token)

    answer = installation.predict("env_stub", b"hello", token=token)
    assert answer.status_code == 200, answer.text
    body = json.loads(answer.content)
    assert body["echo"] == "hello"
    assert body["model"] == "env model"
    assert json.loads(body["config"]) == {"threshold": 0.5}
    assert body["python"].endswith("/ENV/bin/python")
    assert body["openeas"] is False  # the ENV has only the stub, not OpenEAS

    failed = installation.predict("env_stub", b"fail", token=token)
    assert failed.status_code == 400
    assert failed.text == "ValueError: asked to fail"


def test_env_process_batch_gets_whole_batches(installation: Installation, tmp_path: Path) -> None:
    package = env_package(tmp_path)
    installation.client.create_service(description("env_batch", package, **{"rpc.batching": True}))
    installation.client.wait_until_running("env_batch", timeout=120)
    token = str(installation.client.describe_service("env_batch").access_token)
    answer = installation.predict("env_batch", b"x", token=token)
    assert answer.status_code == 200, answer.text
    assert answer.content == b"batched:x"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("#!/bin/sh\necho not a python\n", "ENV/bin/python: is not a Python interpreter"),
        (
            '#!/bin/sh\necho \'{"version": [3, 6], "openeas": false}\'\n',
            "ENV/bin/python: is Python 3.6; the allspark ENV stub needs Python 3.8 or newer",
        ),
    ],
    ids=["not-python", "too-old"],
)
def test_env_that_cannot_run_fails_the_instance_saying_why(
    installation: Installation, tmp_path: Path, script: str, expected: str
) -> None:
    name = "env_bad_" + ("old" if "3, 6" in script else "sh")
    installation.client.create_service(
        description(name, env_package(tmp_path, python_script=script))
    )
    info = wait_for(
        lambda: (d := installation.client.describe_service(name))["Status"] == "Failed" and d,
        timeout=90,
        what="the service to fail",
    )
    assert expected in info["Message"]
    assert expected in installation.client.list_instances(name)[0]["Reason"]


def test_eascmd_test_serves_an_env_package(tmp_path: Path) -> None:
    package = env_package(tmp_path)
    desc = tmp_path / "app.json"
    desc.write_text(json.dumps(description("env_local", package)))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "eas_core.cli", "test", str(desc), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        answer = wait_for(
            lambda: httpx.post(f"http://127.0.0.1:{port}/api/predict/env_local", content=b"hi"),
            timeout=60,
            what="the local ENV service",
        )
        assert answer.status_code == 200, answer.text
        assert json.loads(answer.content)["python"].endswith("/ENV/bin/python")
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert b"Service start successfully" in out
