"""A real installation for tests: `eascmd server` on free loopback ports and a tmp data dir.

Started once per test session (like a shared test server); tests create services with
unique names so they do not see each other. Only the PIDs started here are ever stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from eas_core.errors import Conflict, NotFound
from eas_core.sdk.control import ClientConfig, ControlClient

REPO = Path(__file__).resolve().parents[2]
PROCESSORS = Path(__file__).resolve().parent / "processors"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` (``eas_requests_total``) that carry ``labels``,
    as the Prometheus endpoint at ``url`` shows them now."""
    return metric_in(httpx.get(url, timeout=10).text, name, **labels)


def metric_in(text: str, name: str, **labels: str) -> float:
    """:func:`metric` of a Prometheus text already read."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def wait_for(
    predicate: Any, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the thing we wait for may not answer yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")


@dataclass
class Installation:
    data_dir: Path
    controller_port: int
    gateway_port: int
    process: subprocess.Popen[bytes]
    config_path: Path
    client: ControlClient

    @property
    def controller_url(self) -> str:
        return f"http://127.0.0.1:{self.controller_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
        env["EAS_CONFIG"] = str(self.config_path)
        return env

    def eascmd_command(self) -> list[str]:
        return [sys.executable, "-m", "eas_core.cli"]

    def eascmd(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "eas_core.cli", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.cli_env(),
            timeout=timeout,
            cwd=REPO,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"eascmd {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def eascmd_json(self, *args: str) -> Any:
        return json.loads(self.eascmd(*args, "--json").stdout)

    def pid(self, part: str) -> int:
        return int((self.data_dir / "run" / f"{part}.pid").read_text())

    def predict(
        self,
        name: str,
        body: bytes | str = b"",
        token: str | None = None,
        path: str = "",
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = token
        return httpx.post(
            f"{self.gateway_url}/api/predict/{name}{path}",
            content=body,
            headers=headers,
            timeout=30,
            **kwargs,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.client.close()


def start_installation(
    data_dir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    demo: bool = False,
    extra_args: list[str] | None = None,
    default_sources: bool = False,
    cwd: Path = REPO,
) -> Installation:
    """``default_sources`` keeps the operator's default allow-list of deployment sources
    instead of the tests' (tmp directories, the repository, loopback servers); ``cwd`` is
    where `eascmd server` is started (the repository, unless a test runs it elsewhere)."""
    controller_port, gateway_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
    # The operator declares the node's size: tests run many small instances on 2 cores.
    env.update(
        {
            "EAS_NODE_CPU": "64",
            "EAS_NODE_MEMORY_MB": "262144",
            "EAS_RESTART_BACKOFF_INITIAL": "0.5",
            "EAS_DRAIN_SECONDS": "1.0",
            # Tests deploy from tmp directories, the repository and loopback HTTP servers;
            # the data dir and the installation's own ports stay refused whatever this says.
            "EAS_ARTEFACT_LOCAL_ROOTS": json.dumps([tempfile.gettempdir(), str(REPO)]),
            "EAS_ARTEFACT_URL_HOSTS": json.dumps(["*", "127.0.0.1", "localhost"]),
        }
    )
    if default_sources:
        env.pop("EAS_ARTEFACT_LOCAL_ROOTS")
        env.pop("EAS_ARTEFACT_URL_HOSTS")
    env.update(extra_env or {})
    args = [
        sys.executable,
        "-m",
        "eas_core.cli",
        "server",
        "--data-dir",
        str(data_dir),
        "--port",
        str(controller_port),
        "--gateway-port",
        str(gateway_port),
    ]
    if demo:
        args.append("--demo")
    args += extra_args or []
    with open(data_dir.parent / f"{data_dir.name}-server.out", "wb") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    credentials = data_dir / "credentials.json"
    try:
        wait_for(
            lambda: (
                httpx.get(
                    f"http://127.0.0.1:{gateway_port}/api/builtin/ready", timeout=1
                ).status_code
                == 200
                and credentials.exists()
                and httpx.get(
                    f"http://127.0.0.1:{controller_port}/api/v1/health", timeout=1
                ).status_code
                == 200
            ),
            timeout=60,
            what="the installation to start",
        )
    except AssertionError:
        process.kill()
        raise
    creds = json.loads(credentials.read_text())
    config = ClientConfig(
        creds["AccessKeyId"], creds["AccessKeySecret"], f"http://127.0.0.1:{controller_port}"
    )
    config_path = data_dir.parent / f"{data_dir.name}-eas.config"
    config.save(config_path)
    return Installation(
        data_dir,
        controller_port,
        gateway_port,
        process,
        config_path,
        ControlClient.from_config(config),
    )


def delete_services(client: ControlClient, name: str) -> None:
    """Delete the service ``name`` and its related services (``<name>_<8 hex digits>``),
    related ones first; what is already gone, or on its way, is fine."""
    related = re.compile(rf"{re.escape(name)}_[0-9a-f]{{8}}")
    found = [
        s.service_name
        for s in client.list_services()
        if s.service_name == name or related.fullmatch(s.service_name)
    ]
    for service in sorted(found, key=lambda found_name: found_name == name):
        with contextlib.suppress(NotFound, Conflict):
            client.delete_service(service)


def python_service(
    name: str, app: str = "app.py", *, instances: int = 1, **extra: Any
) -> dict[str, Any]:
    """A description deploying the test processor from tests/support/processors/probe."""
    document: dict[str, Any] = {
        "name": name,
        "processor_type": "python",
        "processor_path": str(PROCESSORS / "probe"),
        "processor_entry": app,
        "metadata": {"instance": instances, "cpu": 0.1, "memory": 128},
    }
    metadata = extra.pop("metadata", {})
    document["metadata"].update(metadata)
    document.update(extra)
    return document


@contextlib.contextmanager
def two_core_node_with_demo(data_dir: Path) -> Iterator[Installation]:
    """The machine the README targets: one node of 2 cores and 8 GiB, the demo deployed and
    already holding its room before anything else asks for some."""
    data_dir.mkdir()
    running = start_installation(
        data_dir, extra_env={"EAS_NODE_CPU": "2", "EAS_NODE_MEMORY_MB": "8192"}, demo=True
    )
    try:
        wait_for(
            lambda: running.client.describe_service("demo")["Status"] == "Running",
            timeout=120,
            what="the demo to run",
        )
        yield running
    finally:
        running.stop()
