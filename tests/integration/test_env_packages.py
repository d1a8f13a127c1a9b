"""A Python package carrying its own ENV interpreter, with no OpenEAS installed in it.

The ENV is a real virtualenv made at test time (``python -m venv --copies``, so no link
leads outside the package; no pip: the processors here use the standard library only).
Deployed through a real installation, and served by `eascmd test`, its processor imports
``allspark`` from the runtime's stub.
"""

from __future__ import annotations

import json
import os
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


def eascmd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eas_core.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_pysdk_init_serves_locally_then_packs_a_package_that_deploys(
    installation: Installation, tmp_path: Path
) -> None:
    eascmd("pysdk", "init", "pysdk_demo", "--without-pip", cwd=tmp_path)
    project = tmp_path / "pysdk_demo"
    assert sorted(p.name for p in project.iterdir()) == ["ENV", "app.json", "app.py"]
    env_python = project / "ENV" / "bin" / "python"
    probe = "import importlib.util as u; print(*(bool(u.find_spec(m)) for m in MODULES))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    found = subprocess.run(
        [str(env_python), "-c", probe.replace("MODULES", "('allspark', 'eas_core')")],
        cwd=project,
        env=clean,
        capture_output=True,
        text=True,
    )
    assert found.stdout.split() == ["True", "False"]  # the SDK, and not OpenEAS

    # `ENV/bin/python app.py`, as the manual runs it: served on the endpoint it names.
    port = free_port()
    app = project / "app.py"
    app.write_text(
        app.read_text().replace(
            "worker_threads=10", f"worker_threads=10, endpoint='127.0.0.1:{port}'"
        )
    )
    served = subprocess.Popen(
        [str(env_python), "app.py"],
        cwd=project,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        answer = wait_for(
            lambda: httpx.post(f"http://127.0.0.1:{port}/api/predict/pysdk_demo", content=b"2 100"),
            timeout=60,
            what="ENV/bin/python app.py to serve",
        )
        assert (answer.status_code, answer.content) == (200, b"True")
        refused = httpx.post(f"http://127.0.0.1:{port}/api/predict/pysdk_demo", content=b"x")
        assert refused.status_code == 400 and b"two integers" in refused.content
    finally:
        served.send_signal(signal.SIGTERM)
        served.communicate(timeout=30)

    packed = eascmd("pysdk", "pack", "pysdk_demo", cwd=tmp_path)
    assert "pysdk_demo.tar.gz" in packed.stdout + packed.stderr
    document = json.loads((project / "app.json").read_text())
    assert document["processor_path"] == str(tmp_path / "pysdk_demo.tar.gz")
    installation.client.create_service(document)
    try:
        installation.client.wait_until_running("pysdk_demo", timeout=120)
        token = str(installation.client.describe_service("pysdk_demo").access_token)
        deployed = installation.predict("pysdk_demo", b"1 300", token=token)
        assert (deployed.status_code, deployed.content) == (400, b"False")
        assert installation.predict("pysdk_demo", b"2 104", token=token).content == b"True"
    finally:
        installation.client.delete_service("pysdk_demo")


def test_pysdk_init_refuses_a_directory_with_a_project(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "app.py").write_text("# mine\n")
    result = subprocess.run(
        [sys.executable, "-m", "eas_core.cli", "pysdk", "init", "taken"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "already holds app.py" in result.stderr + result.stdout
    assert (tmp_path / "taken" / "app.py").read_text() == "# mine\n"
