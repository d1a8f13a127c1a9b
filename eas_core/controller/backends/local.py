"""The local backend: instances are supervised child processes on this machine.

What it keeps of each instance — its record, boot spec, failure reason and log — lives under
the data directory (``records``).

Supervision happens in ``observe`` (called by the reconciler every tick): a dead process is
started again after an exponential back-off and its restart counted; an instance that does
not fit the node's free capacity stays ``Pending`` until it does; a stopped instance leaves
the route table first, keeps serving in-flight requests for the drain time, then gets
SIGTERM (and SIGKILL if it lingers). An instance that was ready and then cannot answer — every
worker thread stuck past the request deadline, or its readiness probe unanswered — leaves the
route table at once and, if it stays so for ``hung_restart_seconds``, is killed and restarted
like a crashed one (the reason goes to `eascmd w` and to its log). A slow instance that still
finishes calls is never stuck for long, so it is never killed.

The records are shared by the reconciler thread (``observe``, ``place``, ``stop``) and the API
threads (``nodes``, ``logs``): every read and change of them holds one lock, and the readiness
probes — which wait on the network — run outside it.

Instances run in their own sessions and survive a controller crash. The record is written,
marked ``launching``, before the process is started, and the pid right after; a new
controller reads the records, finds the processes by their environment (``processes``),
adopts each record's process — also one whose pid was never recorded — and stops processes
of this installation that have no record.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import httpx
import psutil

from eas_core.backoff import Backoff
from eas_core.config import MAX_ARTEFACT_BYTES, ControllerSettings, MiB, child_environment
from eas_core.controller.backends import gpus, processes
from eas_core.controller.backends.base import (
    DEFAULT_RESOURCE_GROUP,
    InstanceSpec,
    NodeInfo,
    ObservedInstance,
)
from eas_core.controller.backends.records import InstanceFiles, InstanceRecord
from eas_core.spec.paths import READY_PATH, STUCK_SECONDS_HEADER
from eas_core.spec.status import InstanceStatus

log = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 10.0
STRAY_GRACE_SECONDS = 5.0  # a process with no record never served routed traffic
LAST_RESTART = "last restart: "


@dataclass(frozen=True)
class Probe:
    """One readiness probe of an instance."""

    answered: bool
    ready: bool = False
    reason: str = ""  # why not ready, as the instance says
    stuck_seconds: float | None = None  # every worker thread stuck for this long


class LocalBackend:
    def __init__(
        self,
        data_dir: Path,
        *,
        host: str,
        cpu: float,
        memory_mb: int,
        gpu: int = 0,
        group: str = DEFAULT_RESOURCE_GROUP,
        labels: dict[str, str] | None = None,
        drain_seconds: float = 1.5,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        probe_timeout: float = 0.5,
        hung_restart_seconds: float = 30.0,
        artefact_store: Path | None = None,
        cache_dir: Path | None = None,
        max_artefact_bytes: int = MAX_ARTEFACT_BYTES,
    ) -> None:
        self.files = InstanceFiles(data_dir)
        # This node's own store and cache, where its instances fetch their artefacts by URI
        # (eas_core.runtime.boot): the installation's, as this node is the controller's.
        self.node_env = {
            "EAS_ARTEFACT_STORE": str(artefact_store or data_dir / "artefacts"),
            "EAS_CACHE_DIR": str(cache_dir or data_dir / "cache"),
            "EAS_MAX_ARTEFACT_BYTES": str(max_artefact_bytes),
        }
        self.host = host
        self.capacity = NodeInfo(
            name="local",
            ip=host,
            cpu=cpu,
            memory_mb=memory_mb,
            gpu=gpu,
            group=group,
            labels=labels or {},
        )
        self.drain_seconds = drain_seconds
        self.backoff = Backoff(backoff_initial, backoff_max)
        self.hung_restart_seconds = hung_restart_seconds
        self.records: dict[str, InstanceRecord] = {}
        # Instance id → first unanswered readiness probe since it last answered.
        self.unanswered_since: dict[str, float] = {}
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(timeout=probe_timeout)
        self.probes = ThreadPoolExecutor(8, thread_name_prefix="eas-probe")
        # Held for every read or change of the records (and what hangs off them); reentrant,
        # as a start asks nodes() whether the instance fits.
        self._lock = threading.RLock()
        # One observation at a time: supervision acts on what the same observation probed.
        self._observing = threading.Lock()
        self._adopt()

    @classmethod
    def from_settings(cls, settings: ControllerSettings) -> Self:
        """This machine as the one node; its size is what the operator declares
        (``EAS_NODE_CPU``, ``EAS_NODE_MEMORY_MB``, ``EAS_NODE_GPU``) or what it has — its
        GPUs found through NVML (none where there is no NVIDIA driver)."""
        found = gpus.detect()
        return cls(
            settings.data_dir,
            host=settings.host,
            cpu=settings.node_cpu or float(os.cpu_count() or 1),
            memory_mb=settings.node_memory_mb or psutil.virtual_memory().total // MiB,
            gpu=settings.node_gpu or len(found),
            group=settings.node_resource_group,
            labels=gpus.labels(found),
            drain_seconds=settings.drain_seconds,
            backoff_initial=settings.restart_backoff_initial,
            backoff_max=settings.restart_backoff_max,
            hung_restart_seconds=settings.hung_restart_seconds,
            artefact_store=settings.artefact_dir,
            cache_dir=settings.cache_dir,
            max_artefact_bytes=settings.max_artefact_bytes,
        )

    # -- the interface (eas_core.controller.backends.base.Backend) ----------------------
    def place(self, spec: InstanceSpec) -> None:
        with self._lock:
            self._place(spec)

    def _place(self, spec: InstanceSpec) -> None:
        if spec.id in self.records:
            return  # placing twice is placing once
        self.files.create(spec.id, spec.boot)
        record = InstanceRecord(
            id=spec.id,
            service=spec.service,
            version=spec.version,
            revision=spec.revision,
            cpu=spec.cpu,
            memory_mb=spec.memory_mb,
            gpu=spec.gpu,
            env=spec.env,
            group=spec.group,
        )
        self.records[spec.id] = record
        self._try_start(record)
        self._save(record)

    def stop(self, instance_id: str) -> None:
        with self._lock:
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
        with self._observing:
            with self._lock:
                now = time.time()
                for record in list(self.records.values()):
                    self._supervise(record, now)
                targets = [
                    (r.id, r.port)
                    for r in self.records.values()
                    if r.pid is not None and r.term_at is None
                ]
            # Probes wait on the network: outside the lock, so nodes() and logs() never do.
            answers = self.probes.map(self._probe, [port for _, port in targets])
            probes = dict(zip(targets, answers, strict=True))
            with self._lock:
                observed = []
                for record in self.records.values():
                    # A probe of a process since stopped or started again says nothing of it.
                    probe = None
                    if record.pid is not None and record.term_at is None:
                        probe = probes.get((record.id, record.port))
                    if probe is not None:
                        self._judge(record, probe, now)
                    observed.append(self._observed(record, probe))
                return observed

    def nodes(self) -> list[NodeInfo]:
        with self._lock:
            return [self._node()]

    def logs(self, instance_id: str, tail: int) -> list[str]:
        # A log is only ever appended to: read without the lock.
        return self.files.tail_log(instance_id, tail)

    def shutdown(self, *, stop_instances: bool) -> None:
        self.probes.shutdown(wait=False)
        self.http.close()
        if not stop_instances:
            return
        with self._lock:
            records = list(self.records.values())
            for record in records:
                if record.pid is not None:
                    self._signal(record, signal.SIGTERM)
        deadline = time.time() + 8
        while time.time() < deadline and any(self._is_alive(r) for r in records):
            time.sleep(0.05)
        with self._lock:
            for record in records:
                if self._is_alive(record):
                    self._signal(record, signal.SIGKILL)
                    # A child of ours is waited for, or it stays a zombie while we run.
                    child = self.children.get(record.pid) if record.pid else None
                    if child is not None:
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            child.wait(timeout=KILL_GRACE_SECONDS)
                self._forget(record)

    def _node(self) -> NodeInfo:
        used = [r for r in self.records.values() if r.placed]
        return NodeInfo(
            name=self.capacity.name,
            ip=self.host,
            cpu=self.capacity.cpu,
            memory_mb=self.capacity.memory_mb,
            gpu=self.capacity.gpu,
            used_cpu=sum(r.cpu for r in used),
            used_memory_mb=sum(r.memory_mb for r in used),
            used_gpu=sum(r.gpu for r in used),
            group=self.capacity.group,
            labels=self.capacity.labels,
        )

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
        reason = (
            record.kill_reason
            or self.files.read_reason(record.id)
            or f"process exited with code {code}"
        )
        record.kill_reason = ""
        self.unanswered_since.pop(record.id, None)
        record.pid = None
        record.restarts += 1
        record.reason = reason
        record.ready_seen = False
        delay = self.backoff.delay(record.restarts)
        record.next_start_at = now + delay
        log.warning(
            "instance %s died (%s); restart %d in %.1fs", record.id, reason, record.restarts, delay
        )
        self._save(record)

    def _in_group(self, record: InstanceRecord) -> bool:
        return record.group in ("", self.capacity.group)

    def _fits(self, record: InstanceRecord) -> bool:
        node = self._node()
        return (
            self._in_group(record)
            and node.used_cpu + record.cpu <= node.cpu + 1e-9
            and node.used_memory_mb + record.memory_mb <= node.memory_mb
            and node.used_gpu + record.gpu <= node.gpu
        )

    def _no_room(self, record: InstanceRecord) -> str:
        """Why an instance waits: what it needs, what is free, and who holds the rest — the
        service's owner can act on it (scale something down, or ask for less)."""
        if not self._in_group(record):
            # This backend has one node; a group it is not in has none until the operator
            # starts a node in it.
            return f"resource group {record.group} has no node"
        node = self._node()
        held: dict[str, float] = {}
        for other in self.records.values():
            if other.placed:
                held[other.service] = held.get(other.service, 0) + other.cpu
        holders = ", ".join(f"{name} {cpu:g}" for name, cpu in sorted(held.items()))
        free_memory = node.memory_mb - node.used_memory_mb
        short = []
        if node.used_cpu + record.cpu > node.cpu + 1e-9:
            short.append(
                f"needs {record.cpu:g} cpu, {max(node.cpu - node.used_cpu, 0):g} "
                f"of {node.cpu:g} free"
            )
        if node.used_memory_mb + record.memory_mb > node.memory_mb:
            short.append(
                f"needs {record.memory_mb} MB, {max(free_memory, 0)} of {node.memory_mb} MB free"
            )
        if node.used_gpu + record.gpu > node.gpu:
            short.append(f"needs {record.gpu} GPU, {node.gpu - node.used_gpu} of {node.gpu} free")
        return f"waiting for room on node {node.name}: {'; '.join(short)}" + (
            f" (cpu held by {holders})" if holders else ""
        )

    def _try_start(self, record: InstanceRecord) -> None:
        if not record.placed:
            if not self._fits(record):
                record.reason = self._no_room(record)
                return
            record.placed = True
            taken = {g for r in self.records.values() for g in r.gpus}
            record.gpus = [g for g in range(self.capacity.gpu) if g not in taken][: record.gpu]
        record.port = _free_port(self.host)
        directory = self.files.directory(record.id)
        self.files.clear_reason(record.id)
        # The controller's own EAS_* settings are not the instance's: only the record's and
        # this node's go.
        env = child_environment(
            {
                **thread_limits(record.cpu),
                **record.env,
                **self.node_env,
                "EAS_INSTANCE_ID": record.id,
                "EAS_HOST": self.host,
                "EAS_PORT": str(record.port),
                "EAS_INSTANCE_DIR": str(directory),
                "CUDA_VISIBLE_DEVICES": ",".join(map(str, record.gpus)),
                "PYTHONUNBUFFERED": "1",
            },
            drop_prefix="EAS_",
        )
        # Intent first: a controller that dies between here and the pid below leaves a record
        # through which the next one finds the process (by its environment) and adopts it.
        record.launching = True
        self._save(record)
        boot = self.files.boot_path(record.id)
        with self.files.open_log(record.id) as logfile:
            process = subprocess.Popen(
                [sys.executable, "-m", "eas_core.runtime.boot", str(boot)],
                env=env,
                cwd=directory,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.children[process.pid] = process
        record.pid = process.pid
        record.launching = False
        record.started_at = time.time()
        log.info("started instance %s (pid %d, port %d)", record.id, process.pid, record.port)

    def _probe(self, port: int) -> Probe:
        try:
            answer = self.http.get(f"http://{self.host}:{port}{READY_PATH}")
        except httpx.HTTPError:
            return Probe(answered=False)
        if answer.status_code == 200:
            return Probe(answered=True, ready=True)
        stuck = answer.headers.get(STUCK_SECONDS_HEADER)
        try:
            stuck_seconds = float(stuck) if stuck is not None else None
        except ValueError:
            stuck_seconds = None
        return Probe(answered=True, reason=answer.text[:300], stuck_seconds=stuck_seconds)

    def _judge(self, record: InstanceRecord, probe: Probe, now: float) -> None:
        """Mark an instance ready; kill one that has not been able to answer for too long."""
        if probe.ready:
            self.unanswered_since.pop(record.id, None)
            if not record.ready_seen:
                record.ready_seen = True
                # Back after a restart: why it restarted stays visible in `eascmd w`.
                record.reason = _last_restart(record.reason) if record.restarts else ""
                self._save(record)
            return
        # Still starting (initialize may take long), or already being killed.
        if not record.ready_seen or record.kill_reason:
            return
        if probe.answered:
            self.unanswered_since.pop(record.id, None)
            if probe.stuck_seconds is not None and probe.stuck_seconds >= self.hung_restart_seconds:
                self._kill(
                    record,
                    f"hung: {probe.reason}, stuck for {probe.stuck_seconds:.0f} s; "
                    "killed and restarted",
                )
            return
        since = self.unanswered_since.setdefault(record.id, now)
        if now - since >= self.hung_restart_seconds:
            self._kill(
                record,
                f"hung: did not answer its readiness probe for {now - since:.0f} s; "
                "killed and restarted",
            )

    def _kill(self, record: InstanceRecord, reason: str) -> None:
        log.warning("instance %s %s", record.id, reason)
        record.kill_reason = record.reason = reason
        self._save(record)
        with self.files.open_log(record.id) as logfile:
            logfile.write(f"[ERROR] {reason}\n".encode())
        self._signal(record, signal.SIGKILL)

    def _observed(self, record: InstanceRecord, probe: Probe | None) -> ObservedInstance:
        answering = True
        reason = record.reason
        if record.term_at is not None:
            status = InstanceStatus.TERMINATING
        elif not record.placed:
            status = InstanceStatus.PENDING
        elif record.pid is None:
            status = InstanceStatus.FAILED if record.restarts else InstanceStatus.PENDING
        elif probe is not None and probe.ready:
            status = InstanceStatus.RUNNING
        elif record.ready_seen:
            # It ran and cannot answer now: out of the route table until it can again.
            status = InstanceStatus.RUNNING
            answering = False
            if not record.kill_reason:
                reason = (probe.reason if probe and probe.answered else "") or (
                    "does not answer its readiness probe"
                )
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
            reason=reason,
            pid=record.pid,
            answering=answering,
            gpus=tuple(record.gpus) if record.placed else (),
        )

    # -- processes -----------------------------------------------------------------------
    def _is_alive(self, record: InstanceRecord) -> bool:
        if record.pid is None:
            return False
        child = self.children.get(record.pid)
        if child is not None:
            return child.poll() is None
        return processes.is_instance_process(record.pid, record.id, self.files.resolved_root)

    def _exit_code(self, record: InstanceRecord) -> int | None:
        child = self.children.pop(record.pid, None) if record.pid else None
        return child.returncode if child is not None else None

    def _signal(self, record: InstanceRecord, signum: int) -> None:
        if record.pid is None or not self._is_alive(record):
            return
        if signum == signal.SIGKILL:
            # The whole group: a supervisor's worker processes must not outlive it.
            processes.kill_group(record.pid)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signum)

    def _forget(self, record: InstanceRecord) -> None:
        if record.pid is not None:
            self.children.pop(record.pid, None)
        self.records.pop(record.id, None)
        self.unanswered_since.pop(record.id, None)
        self.files.remove(record.id)

    def _save(self, record: InstanceRecord) -> None:
        self.files.save(record)

    # -- adoption ----------------------------------------------------------------------
    def _adopt(self) -> None:
        running = processes.running_instances(self.files.resolved_root)
        for record in self.files.load():
            self._reattach(record, running.pop(record.id, []))
            self.records[record.id] = record
            self._save(record)  # written again 0600, as every record is now
            log.info("adopted instance %s (pid %s)", record.id, record.pid)
        # What is left runs with no record: started by a controller that died before it
        # recorded anything. Nothing routes to it and nothing would ever stop it.
        for instance_id, found in running.items():
            log.warning(
                "stopping instance %s (pids %s): this installation has no record of it",
                instance_id,
                ", ".join(str(p.pid) for p in found),
            )
        processes.stop([p for found in running.values() for p in found], grace=STRAY_GRACE_SECONDS)
        self.files.remove_unrecorded()  # placed, never started

    def _reattach(self, record: InstanceRecord, found: list[psutil.Process]) -> None:
        """Point ``record`` at the process that runs it, if one does."""
        leaders = processes.leaders(found)
        recorded = [p for p in leaders if p.pid == record.pid]
        leader = recorded[0] if recorded else leaders[0] if leaders else None
        extra = [p for p in leaders if p is not leader]
        if extra:  # two starts of one instance: keep one
            log.warning("stopping extra processes of instance %s: %s", record.id, extra)
            processes.stop(extra, grace=STRAY_GRACE_SECONDS)
        if leader is not None:
            if leader.pid != record.pid:
                log.warning(
                    "instance %s runs as pid %d, which was never recorded: adopting it",
                    record.id,
                    leader.pid,
                )
                record.pid = leader.pid
                record.started_at = processes.started_at(leader)
            record.launching = False
            return
        if record.pid is not None:
            # It died while no controller watched: supervise() restarts it.
            record.pid = None
            record.restarts += 1
            record.reason = (
                self.files.read_reason(record.id) or "process ended while the controller was down"
            )
            record.ready_seen = False
        # A start that never happened (or died at once) is simply made again.
        record.launching = False


def _last_restart(reason: str) -> str:
    if not reason or reason.startswith(LAST_RESTART):
        return reason
    return LAST_RESTART + reason


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def thread_limits(cpu: float) -> dict[str, str]:
    """Numeric libraries size their thread pools to the machine's cores unless told: an
    instance's are sized to its ``cpu`` (its own environment, applied after, may say more)."""
    threads = str(max(1, math.ceil(cpu)))
    return {"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
