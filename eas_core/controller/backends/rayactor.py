"""One instance on a Ray node: the actor that runs and supervises its runtime process.

The actor is what Ray places (with the instance's cpu, memory, GPUs and resource group); the
instance itself is the same runtime the local backend starts — ``python -m
eas_core.runtime.boot boot.json`` as a child process of the actor, in its own session — so
nothing of the data path knows it runs under Ray. The actor keeps, on its node, the boot spec,
the log and the ``reason`` file the runtime writes when it fails, under
``<tmp>/eas-ray/<namespace>/<instance id>/``.

Supervision is driven by the controller's ``poll`` calls (one per reconciler tick): a dead
process is counted, its reason kept, and started again after the installation's back-off.
Ray wraps the class (``ray.remote``) where it is used; it imports Ray only once built, inside
a Ray worker.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eas_core.backoff import Backoff
from eas_core.config import child_environment

TERM_GRACE_SECONDS = 10.0


class InstanceActor:
    def __init__(
        self,
        spec: dict[str, Any],
        *,
        namespace: str,
        node_env: dict[str, str],
        backoff_initial: float,
        backoff_max: float,
    ) -> None:
        import ray  # only ever built inside a Ray worker

        self.spec = spec
        self.host = ray.util.get_node_ip_address()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.node_env = node_env
        self.backoff = Backoff(backoff_initial, backoff_max)
        self.directory = Path(tempfile.gettempdir()) / "eas-ray" / namespace / spec["id"]
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The boot spec carries the service token: readable by this user only.
        boot = self.directory / "boot.json"
        fd = os.open(boot, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(spec["boot"]))
        self.log_path = self.directory / "log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.restarts = 0
        self.reason = ""
        self.started_at: float | None = None
        self.next_start_at = 0.0
        self._start()

    def poll(self) -> dict[str, Any]:
        """Supervise once, then say how the process is."""
        now = time.time()
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            self.process = None
            self.restarts += 1
            self.reason = self._read_reason() or f"process exited with code {code}"
            self.next_start_at = now + self.backoff.delay(self.restarts)
        if self.process is None and now >= self.next_start_at:
            self._start()
        return {
            "id": self.spec["id"],
            "host": self.host,
            "node_id": self.node_id,
            "port": self.port,
            "pid": self.process.pid if self.process is not None else None,
            "restarts": self.restarts,
            "reason": self.reason,
            "started_at": self.started_at,
            "gpus": _visible_gpus(),
        }

    def describe(self) -> dict[str, Any]:
        """The spec it runs: what a restarted controller adopts (and creates again, should
        the actor die)."""
        return self.spec

    def logs(self, tail: int) -> list[str]:
        if tail <= 0 or not self.log_path.is_file():
            return []
        with self.log_path.open(errors="replace") as f:
            return [line.rstrip("\n") for line in collections.deque(f, maxlen=tail)]

    def terminate(self, grace: float = TERM_GRACE_SECONDS) -> None:
        """SIGTERM (the runtime finishes what it serves), then SIGKILL the whole session."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        self.process = None

    def _start(self) -> None:
        self.port = _free_port(self.host)
        (self.directory / "reason").unlink(missing_ok=True)
        env = child_environment(
            {
                **self.spec["env"],
                **self.node_env,
                "EAS_INSTANCE_ID": self.spec["id"],
                "EAS_HOST": self.host,
                "EAS_PORT": str(self.port),
                "EAS_INSTANCE_DIR": str(self.directory),
                # Ray sets the GPUs it assigned to this actor; the runtime gets those.
                "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                "PYTHONUNBUFFERED": "1",
            },
            drop_prefix="EAS_",
        )
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as logfile:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eas_core.runtime.boot", str(self.directory / "boot.json")],
                env=env,
                cwd=self.directory,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started_at = time.time()

    def _read_reason(self) -> str:
        try:
            return (self.directory / "reason").read_text().strip()
        except FileNotFoundError:
            return ""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _visible_gpus() -> list[int]:
    """The GPU indices Ray assigned this actor (its CUDA_VISIBLE_DEVICES)."""
    devices = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return [int(d) for d in devices.split(",") if d.strip().isdigit()]
