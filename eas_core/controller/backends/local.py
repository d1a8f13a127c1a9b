"""The local backend: instances are supervised child processes on this machine.

Each instance has a directory under ``<data_dir>/instances/<id>/`` holding its record
(``record.json``, rewritten atomically on every change), its boot spec and the ``reason``
file the runtime writes when it fails. The log lives in ``<data_dir>/logs/`` so it outlives
the instance.

Supervision happens in ``observe`` (called by the reconciler every tick): a dead process is
started again after an exponential back-off and its restart counted; an instance that does
not fit the node's free capacity stays ``Pending`` until it does; a stopped instance leaves
the route table first, keeps serving in-flight requests for the drain time, then gets
SIGTERM (and SIGKILL if it lingers).

Instances run in their own sessions and survive a controller crash; a new controller reads
the records, checks each process is still the one it started (its environment carries the
instance id) and adopts it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from eas_core.controller.backends.base import InstanceSpec, NodeInfo, ObservedInstance
from eas_core.spec.status import InstanceStatus

log = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 10.0


@dataclass
class InstanceRecord:
    id: str
    service: str
    version: int
    revision: int
    cpu: float
    memory_mb: int
    gpu: int
    env: dict[str, str]
    port: int = 0
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = None
    next_start_at: float = 0.0
    # Set when stop() was asked: SIGTERM at term_at, SIGKILL at kill_at.
    term_at: float | None = None
    kill_at: float | None = None
    term_sent: bool = False
    reason: str = ""
    placed: bool = False  # False while Pending (no room on the node)
    ready_seen: bool = False
    gpus: list[int] = field(default_factory=list)


class LocalBackend:
    def __init__(
        self,
        data_dir: Path,
        *,
        host: str,
        cpu: float,
        memory_mb: int,
        gpu: int = 0,
        drain_seconds: float = 1.5,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        probe_timeout: float = 0.5,
    ) -> None:
        self.root = data_dir / "instances"
        self.logs = data_dir / "logs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.capacity = NodeInfo(name="local", ip=host, cpu=cpu, memory_mb=memory_mb, gpu=gpu)
        self.drain_seconds = drain_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.records: dict[str, InstanceRecord] = {}
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(timeout=probe_timeout)
        self.probes = ThreadPoolExecutor(8, thread_name_prefix="eas-probe")
        self._adopt()

    # -- the four questions ----------------------------------------------------------
    def place(self, spec: InstanceSpec) -> None:
        if spec.id in self.records:
            return  # placing twice is placing once
        directory = self.root / spec.id
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "boot.json").write_text(json.dumps(spec.boot))
        record = InstanceRecord(
            id=spec.id,
            service=spec.service,
            version=spec.version,
            revision=spec.revision,
            cpu=spec.cpu,
            memory_mb=spec.memory_mb,
            gpu=spec.gpu,
            env=spec.env,
        )
        self.records[spec.id] = record
        self._try_start(record)
        self._save(record)

    def stop(self, instance_id: str) -> None:
        record = self.records.get(instance_id)
        if record is None or record.term_at is not None:
            return
        now = time.time()
        # Not yet serving anything: no need to drain.
        drain = self.drain_seconds if record.ready_seen else 0.0
        record.term_at = now + drain
        record.kill_at = now + drain + KILL_GRACE_SECONDS
        self._save(record)

    def observe(self) -> list[ObservedInstance]:
        now = time.time()
        for record in list(self.records.values()):
            self._supervise(record, now)
        alive = [r for r in self.records.values() if r.pid is not None and r.term_at is None]
        ready = dict(zip([r.id for r in alive], self.probes.map(self._probe, alive), strict=True))
        observed = []
        for record in self.records.values():
            is_ready = ready.get(record.id, False)
            if is_ready and not record.ready_seen:
                record.ready_seen = True
                record.reason = ""
                self._save(record)
            observed.append(self._observed(record, is_ready))
        return observed

    def nodes(self) -> list[NodeInfo]:
        used = [r for r in self.records.values() if r.placed]
        return [
            NodeInfo(
                name=self.capacity.name,
                ip=self.host,
                cpu=self.capacity.cpu,
                memory_mb=self.capacity.memory_mb,
                gpu=self.capacity.gpu,
                used_cpu=sum(r.cpu for r in used),
                used_memory_mb=sum(r.memory_mb for r in used),
                used_gpu=sum(r.gpu for r in used),
            )
        ]

    def shutdown(self, *, stop_instances: bool) -> None:
        self.probes.shutdown(wait=False)
        self.http.close()
        if not stop_instances:
            return
        for record in self.records.values():
            if record.pid is not None:
                self._signal(record, signal.SIGTERM)
        deadline = time.time() + 8
        while time.time() < deadline and any(self._is_alive(r) for r in self.records.values()):
            time.sleep(0.05)
        for record in list(self.records.values()):
            if self._is_alive(record):
                self._signal(record, signal.SIGKILL)
            self._forget(record)

    def log_path(self, instance_id: str) -> Path:
        return self.logs / f"{instance_id}.log"

    # -- supervision -------------------------------------------------------------------
    def _supervise(self, record: InstanceRecord, now: float) -> None:
        if record.term_at is not None:
            if record.pid is None or not self._is_alive(record):
                self._forget(record)
            elif not record.term_sent and now >= record.term_at:
                self._signal(record, signal.SIGTERM)
                record.term_sent = True
                self._save(record)
            elif record.kill_at is not None and now >= record.kill_at:
                self._signal(record, signal.SIGKILL)
            return
        if record.pid is None:
            if now >= record.next_start_at:
                self._try_start(record)
                self._save(record)
            return
        if self._is_alive(record):
            return
        # The process died: count it, remember why, start again after a back-off.
        code = self._exit_code(record)
        reason = self._read_reason(record) or f"process exited with code {code}"
        record.pid = None
        record.restarts += 1
        record.reason = reason
        record.ready_seen = False
        delay = min(self.backoff_initial * 2 ** (record.restarts - 1), self.backoff_max)
        record.next_start_at = now + delay
        log.warning(
            "instance %s died (%s); restart %d in %.1fs", record.id, reason, record.restarts, delay
        )
        self._save(record)

    def _fits(self, record: InstanceRecord) -> bool:
        node = self.nodes()[0]
        return (
            node.used_cpu + record.cpu <= node.cpu + 1e-9
            and node.used_memory_mb + record.memory_mb <= node.memory_mb
            and node.used_gpu + record.gpu <= node.gpu
        )

    def _try_start(self, record: InstanceRecord) -> None:
        if not record.placed:
            if not self._fits(record):
                record.reason = "not enough free resources on the node (waiting for room)"
                return
            record.placed = True
            taken = {g for r in self.records.values() for g in r.gpus}
            record.gpus = [g for g in range(self.capacity.gpu) if g not in taken][: record.gpu]
        record.port = _free_port(self.host)
        directory = self.root / record.id
        (directory / "reason").unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
        env.update(record.env)
        env.update(
            EAS_INSTANCE_ID=record.id,
            EAS_HOST=self.host,
            EAS_PORT=str(record.port),
            EAS_INSTANCE_DIR=str(directory),
            CUDA_VISIBLE_DEVICES=",".join(map(str, record.gpus)),
            PYTHONUNBUFFERED="1",
        )
        with open(self.log_path(record.id), "ab") as logfile:
            process = subprocess.Popen(
                [sys.executable, "-m", "eas_core.runtime.boot", str(directory / "boot.json")],
                env=env,
                cwd=directory,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.children[process.pid] = process
        record.pid = process.pid
        record.started_at = time.time()
        log.info("started instance %s (pid %d, port %d)", record.id, process.pid, record.port)

    def _probe(self, record: InstanceRecord) -> bool:
        try:
            answer = self.http.get(f"http://{self.host}:{record.port}/api/builtin/ready")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def _observed(self, record: InstanceRecord, is_ready: bool) -> ObservedInstance:
        if record.term_at is not None:
            status = InstanceStatus.TERMINATING
        elif not record.placed:
            status = InstanceStatus.PENDING
        elif record.pid is None:
            status = InstanceStatus.FAILED if record.restarts else InstanceStatus.PENDING
        elif is_ready:
            status = InstanceStatus.RUNNING
        elif record.restarts:
            status = InstanceStatus.RESTARTING
        else:
            status = InstanceStatus.STARTING
        started = datetime.fromtimestamp(record.started_at, UTC) if record.started_at else None
        return ObservedInstance(
            id=record.id,
            service=record.service,
            version=record.version,
            revision=record.revision,
            status=status,
            host=self.host,
            port=record.port,
            node=self.capacity.name,
            restarts=record.restarts,
            started_at=started,
            reason=record.reason,
            pid=record.pid,
        )

    # -- processes -----------------------------------------------------------------------
    def _is_alive(self, record: InstanceRecord) -> bool:
        if record.pid is None:
            return False
        child = self.children.get(record.pid)
        if child is not None:
            return child.poll() is None
        return _is_our_process(record.pid, record.id)

    def _exit_code(self, record: InstanceRecord) -> int | None:
        child = self.children.pop(record.pid, None) if record.pid else None
        return child.returncode if child is not None else None

    def _signal(self, record: InstanceRecord, signum: int) -> None:
        if record.pid is None or not self._is_alive(record):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signum)

    def _read_reason(self, record: InstanceRecord) -> str:
        try:
            return (self.root / record.id / "reason").read_text().strip()
        except FileNotFoundError:
            return ""

    def _forget(self, record: InstanceRecord) -> None:
        if record.pid is not None:
            self.children.pop(record.pid, None)
        self.records.pop(record.id, None)
        shutil.rmtree(self.root / record.id, ignore_errors=True)

    # -- persistence -----------------------------------------------------------------------
    def _save(self, record: InstanceRecord) -> None:
        directory = self.root / record.id
        if not directory.exists():
            return
        tmp = directory / "record.json.tmp"
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, directory / "record.json")

    def _adopt(self) -> None:
        for path in sorted(self.root.glob("*/record.json")):
            try:
                record = InstanceRecord(**json.loads(path.read_text()))
            except (ValueError, TypeError) as exc:
                log.warning("ignoring unreadable instance record %s: %s", path, exc)
                continue
            if record.pid is not None and not _is_our_process(record.pid, record.id):
                # It died while no controller watched: supervise() restarts it.
                record.pid = None
                record.restarts += 1
                record.reason = (
                    self._read_reason(record) or "process ended while the controller was down"
                )
            self.records[record.id] = record
            log.info("adopted instance %s (pid %s)", record.id, record.pid)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _is_our_process(pid: int, instance_id: str) -> bool:
    """Is ``pid`` alive (not a zombie) and the instance we started (not a reused pid)?"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        if state in (b"Z", b"X"):
            return False
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"EAS_INSTANCE_ID={instance_id}".encode() in f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return False
