"""The parts of one installation started one by one, as an operator spreading them over
machines would (deploy/multi-machine/README.md): controllers and gateways as separate
processes sharing one data directory and one store, each stopped by its PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from eas_core.config import ControllerSettings
from eas_core.controller.backends.registry import build_backend
from eas_core.sdk import ClientConfig, ControlClient
from tests.support.installation import REPO, free_port, wait_for


@dataclass
class Part:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Parts:
    data_dir: Path
    store: str
    controller_ports: list[int]
    gateway_ports: list[int]
    started: list[Part] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
        env.update(
            {
                "EAS_DATA_DIR": str(self.data_dir),
                "EAS_HOST": "127.0.0.1",
                "EAS_STORE": self.store,
                "EAS_CONTROLLER_PORT": str(self.controller_ports[0]),
                "EAS_GATEWAY_PORT": str(self.gateway_ports[0]),
                "EAS_GATEWAYS": json.dumps([f"http://127.0.0.1:{p}" for p in self.gateway_ports]),
                "EAS_CONTROLLERS": json.dumps(
                    [f"http://127.0.0.1:{p}" for p in self.controller_ports]
                ),
                "EAS_NODE_CPU": "64",
                "EAS_NODE_MEMORY_MB": "262144",
                "EAS_DRAIN_SECONDS": "1.0",
                "EAS_LEASE_RETRY_SECONDS": "0.5",
                "EAS_ARTEFACT_LOCAL_ROOTS": json.dumps([tempfile.gettempdir(), str(REPO)]),
                "EAS_ARTEFACT_URL_HOSTS": json.dumps(["*", "127.0.0.1", "localhost"]),
            }
        )
        return env

    def _start(self, name: str, module: str, port_variable: str, port: int) -> Part:
        env = {**self.env(), port_variable: str(port)}
        if port_variable == "EAS_CONTROLLER_PORT":
            env["EAS_ADVERTISE_URL"] = f"http://127.0.0.1:{port}"
        with open(self.data_dir.parent / f"{name}.out", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        part = Part(name, port, process)
        self.started.append(part)
        return part

    def controller(self, index: int) -> Part:
        port = self.controller_ports[index]
        part = self._start(f"controller{index}", "eas_core.controller", "EAS_CONTROLLER_PORT", port)
        wait_for(
            lambda: httpx.get(f"{part.url}/api/v1/health", timeout=1).status_code == 200,
            timeout=60,
            what=f"controller {index} to answer",
        )
        return part

    def gateway(self, index: int) -> Part:
        port = self.gateway_ports[index]
        part = self._start(f"gateway{index}", "eas_core.gateway", "EAS_GATEWAY_PORT", port)
        wait_for(
            lambda: httpx.get(f"{part.url}/api/builtin/ready", timeout=1).status_code == 200,
            timeout=60,
            what=f"gateway {index} to have a route table",
        )
        return part

    def client(self, controller: Part) -> ControlClient:
        creds = json.loads((self.data_dir / "credentials.json").read_text())
        return ControlClient.from_config(
            ClientConfig(creds["AccessKeyId"], creds["AccessKeySecret"], controller.url)
        )

    def stop(self) -> None:
        """Stop every part still running (SIGTERM to its PID), then the instances, which
        outlive any controller by design."""
        for part in reversed(self.started):
            if part.process.poll() is None:
                part.process.send_signal(signal.SIGTERM)
                try:
                    part.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    part.process.kill()
                    part.process.wait()
        with contextlib.suppress(Exception):
            settings = ControllerSettings(data_dir=self.data_dir, store=self.store)
            build_backend(settings).shutdown(stop_instances=True)


def parts(data_dir: Path, store: str, *, controllers: int, gateways: int) -> Parts:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Parts(
        data_dir,
        store,
        [free_port() for _ in range(controllers)],
        [free_port() for _ in range(gateways)],
    )
