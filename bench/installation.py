"""An OpenEAS installation for the benchmarks: `eascmd server` in a temp data dir, free ports.

Started the way an operator starts one (``python -m eas_core.cli server``), optionally pinned
to CPUs with ``taskset``; the access key comes from the ``credentials.json`` the server
writes, and everything else goes through the SDK's :class:`ControlClient`. Only the process
started here is ever stopped (SIGINT, which stops the controller, gateway and instances).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from eas_core.sdk.control import ControlClient

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Installation:
    data_dir: Path
    controller_port: int
    gateway_port: int
    process: subprocess.Popen[bytes]
    client: ControlClient
    log: Path

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def pid(self, part: str) -> int:
        """The pid of ``gateway`` or ``controller``, as the server records it."""
        return int((self.data_dir / "run" / f"{part}.pid").read_text())

    def parts(self) -> dict[str, list[psutil.Process]]:
        """The processes behind each part: the gateway, the controller, and the instances
        (the controller's children, with their own worker processes)."""
        gateway = psutil.Process(self.pid("gateway"))
        controller = psutil.Process(self.pid("controller"))
        return {
            "gateway": [gateway, *gateway.children(recursive=True)],
            "controller": [controller],
            "instances": controller.children(recursive=True),
        }

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _ready(controller_port: int, gateway_port: int, credentials: Path) -> bool:
    try:
        gateway = httpx.get(f"http://127.0.0.1:{gateway_port}/api/builtin/ready", timeout=1)
        controller = httpx.get(f"http://127.0.0.1:{controller_port}/api/v1/health", timeout=1)
    except httpx.HTTPError:
        return False
    return gateway.status_code == 200 and controller.status_code == 200 and credentials.exists()


def start(
    data_dir: Path, *, cpus: str | None = "0", extra_env: dict[str, str] | None = None
) -> Installation:
    """Start `eascmd server` on free loopback ports, pinned to ``cpus`` (``None``: unpinned),
    with ``extra_env`` (``EAS_*`` settings), and wait until the gateway and the control API
    answer."""
    controller_port, gateway_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
    # The node's declared size, not a limit: every instance is pinned to CPU 0 anyway. It
    # lets a version switch place the new instance beside the old one while both run.
    env["EAS_NODE_CPU"] = "8"
    if cpus is not None and "," not in cpus and "-" not in cpus:
        # One core: numeric libraries' thread pools (OpenBLAS busy-waits) would fight over it.
        env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    command = [
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
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    log = data_dir.parent / f"{data_dir.name}-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    credentials = data_dir / "credentials.json"
    deadline = time.monotonic() + START_TIMEOUT
    while not _ready(controller_port, gateway_port, credentials):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=60)
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"`eascmd server` did not start within {START_TIMEOUT:g} s "
                f"(exit code {process.returncode}); its log ends:\n{tail}"
            )
        time.sleep(0.2)
    keys = json.loads(credentials.read_text())
    client = ControlClient(
        f"http://127.0.0.1:{controller_port}", keys["AccessKeyId"], keys["AccessKeySecret"]
    )
    return Installation(data_dir, controller_port, gateway_port, process, client, log)


@contextmanager
def running(
    data_dir: Path, *, cpus: str | None = "0", extra_env: dict[str, str] | None = None
) -> Iterator[Installation]:
    installation = start(data_dir, cpus=cpus, extra_env=extra_env)
    try:
        yield installation
    finally:
        installation.stop()
