"""A small Ray cluster on loopback for tests: a head node and optional worker nodes, each
``ray start --block`` in a session of its own, each with a resource group as custom resource
(``group:NAME``) standing for one machine of that group. Stopped by the PIDs it started.

Kept small (no dashboard, few CPUs): the test machine is shared.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from eas_core.config import MiB

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT = 120.0
# A test cluster on one machine: no usage reports, no token (every driver here is a test).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NodeExited(RuntimeError):
    """``ray start`` of a node ended before the node joined."""


@dataclass
class RayNode:
    group: str
    cpu: int
    memory_mb: int
    process: subprocess.Popen[bytes]
    log: Path
    # Every process of the node seen so far (raylet, workers, …): ended by PID.
    seen: set[int] = field(default_factory=set)

    def track(self) -> None:
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return
        self.seen.update(child.pid for child in children)

    def stop(self) -> None:
        """The node's processes, by PID: SIGTERM, then SIGKILL what lingers."""
        self.track()
        procs = []
        for pid in {self.process.pid, *self.seen}:
            try:
                procs.append(psutil.Process(pid))
            except psutil.Error:
                continue
        for proc in procs:
            try:
                proc.terminate()
            except psutil.Error:
                continue
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                continue
        psutil.wait_procs(alive, timeout=10)
        self.process.wait(timeout=10)  # our child: reaped, not left a zombie


class RayCluster:
    def __init__(self) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Ray's socket paths must stay short: a directory of its own under /tmp.
        self.temp_dir = Path(tempfile.mkdtemp(prefix=f"eas-ray-{secrets.token_hex(2)}-"))
        self.nodes: list[RayNode] = []

    def start_node(self, group: str, *, cpu: int, memory_mb: int) -> RayNode:
        """Start one node; a node whose start timed out on a loaded machine (Ray gives up
        after a fixed deadline) is started again, up to three times."""
        for attempt in range(3):
            try:
                return self._start_node(group, cpu=cpu, memory_mb=memory_mb)
            except NodeExited:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_node(self, group: str, *, cpu: int, memory_mb: int) -> RayNode:
        head = not self.nodes
        args = [
            RAY,
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={cpu}",
            "--num-gpus=0",
            f"--memory={memory_mb * MiB}",
            f"--object-store-memory={80 * MiB}",
            f"--resources={json.dumps({f'group:{group}': 100})}",
            "--disable-usage-stats",
        ]
        if head:
            args += [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}",
            ]
        else:
            args += [f"--address={self.address}"]
        log = self.temp_dir.with_name(f"{self.temp_dir.name}-{len(self.nodes)}.log")
        with log.open("wb") as out:
            process = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **RAY_ENV},
            )
        node = RayNode(group, cpu, memory_mb, process, log)
        self.nodes.append(node)
        try:
            self._wait_for_nodes(len(self.nodes), node)
        except NodeExited:
            self.nodes.remove(node)
            node.stop()
            raise
        return node

    def _wait_for_nodes(self, count: int, node: RayNode) -> None:
        """Until the cluster reports ``count`` live nodes (asked in a process of its own, so
        this one never connects as a driver)."""
        probe = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise NodeExited(f"ray start exited: {node.log.read_text()[-2000:]}")
            node.track()
            answer = subprocess.run(
                [sys.executable, "-c", probe, self.address],
                env={**os.environ, **RAY_ENV},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            lines = answer.stdout.strip().splitlines()
            if lines and lines[-1].isdigit() and int(lines[-1]) >= count:
                node.track()
                return
            time.sleep(1)
        raise RuntimeError(f"ray cluster did not reach {count} nodes: {node.log.read_text()}")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
