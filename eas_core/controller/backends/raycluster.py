"""The Ray backend: each instance is a detached, named Ray actor on some node of a Ray cluster.

``EAS_BACKEND=ray`` with ``EAS_RAY_ADDRESS`` (``eascmd server --backend ray --ray-address
ADDR``). Each actor (``rayactor.InstanceActor``) asks Ray for the instance's cpu, memory and
GPUs plus a sliver of its resource group's custom resource (``group:NAME``: a node is in the
group whose resource it was started with, ``ray start --resources '{"group:gpu-a": 100}'``),
and is placed with the SPREAD strategy so the instances of a service land on different nodes
while there is room. It runs the unchanged instance runtime as a child process and reports
its node's IP and the port, which go to the route table and service discovery.

Actors live in a namespace of their own per installation (named after its data directory)
and are named by instance id: a restarted controller lists them and adopts them. Supervision:
the actor restarts a runtime process that died (with back-off, counted); an actor that died
(its node gone) is created again by ``observe`` — wherever Ray finds room — after the same
back-off, and counted as a restart. ``observe`` never waits on an actor Ray has not placed:
each actor has at most one outstanding ``poll`` and the observation takes what answered.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx
import ray
from ray.exceptions import GetTimeoutError, RayActorError

from eas_core.backoff import Backoff
from eas_core.config import MAX_ARTEFACT_BYTES, ControllerSettings, MiB
from eas_core.controller.backends.base import (
    DEFAULT_RESOURCE_GROUP,
    InstanceSpec,
    NodeInfo,
    ObservedInstance,
)
from eas_core.controller.backends.rayactor import InstanceActor
from eas_core.errors import EASError
from eas_core.spec.paths import READY_PATH
from eas_core.spec.status import InstanceStatus

log = logging.getLogger(__name__)

GROUP_RESOURCE = "group:"
GROUP_LABEL = "eas-group"
# What an instance takes of its group's custom resource: only membership matters.
GROUP_SHARE = 0.001
CALL_TIMEOUT = 10.0
POLL_WAIT = 0.1


@dataclass
class Tracked:
    """What this controller knows of one instance's actor."""

    spec: dict[str, Any]  # InstanceSpec as JSON, less nothing: a re-created actor needs it all
    actor: Any
    poll: Any = None  # the outstanding poll's ObjectRef
    state: dict[str, Any] = field(default_factory=dict)  # the last poll's answer
    placed: bool = False  # Ray has placed the actor (a poll answered)
    ready_seen: bool = False
    restarts: int = 0  # actor deaths (process deaths are the actor's own count)
    reason: str = ""
    recreate_at: float | None = None  # set while a dead actor waits for its back-off
    term_at: float | None = None


class RayBackend:
    def __init__(
        self,
        address: str,
        *,
        data_dir: Path,
        drain_seconds: float = 1.5,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        probe_timeout: float = 0.5,
        artefact_store: Path | None = None,
        cache_dir: Path | None = None,
        max_artefact_bytes: int = MAX_ARTEFACT_BYTES,
    ) -> None:
        if not ray.is_initialized():
            ray.init(
                address=address,
                namespace="eas",
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=False,
            )
        # One namespace per installation: two installations on one cluster never adopt each
        # other's instances.
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
        self.namespace = f"eas-{digest}"
        # The nodes' artefact store and cache: the installation's, so every node must see the
        # installation's data directory at the same path (one machine, or a shared mount).
        self.node_env = {
            "EAS_ARTEFACT_STORE": str(artefact_store or data_dir / "artefacts"),
            "EAS_CACHE_DIR": str(cache_dir or data_dir / "cache"),
            "EAS_MAX_ARTEFACT_BYTES": str(max_artefact_bytes),
        }
        self.drain_seconds = drain_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.backoff = Backoff(backoff_initial, backoff_max)
        self.remote = ray.remote(InstanceActor)
        self.tracked: dict[str, Tracked] = {}
        self.http = httpx.Client(timeout=probe_timeout)
        self.probes = ThreadPoolExecutor(8, thread_name_prefix="eas-ray-probe")
        self._lock = threading.RLock()
        self._observing = threading.Lock()
        self._adopt()

    @classmethod
    def from_settings(cls, settings: ControllerSettings) -> Self:
        if not settings.ray_address:
            raise EASError("ray_address: the ray backend needs EAS_RAY_ADDRESS (--ray-address)")
        return cls(
            settings.ray_address,
            data_dir=settings.data_dir,
            drain_seconds=settings.drain_seconds,
            backoff_initial=settings.restart_backoff_initial,
            backoff_max=settings.restart_backoff_max,
            artefact_store=settings.artefact_dir,
            cache_dir=settings.cache_dir,
            max_artefact_bytes=settings.max_artefact_bytes,
        )

    # -- the interface (eas_core.controller.backends.base.Backend) ----------------------
    def place(self, spec: InstanceSpec) -> None:
        with self._lock:
            if spec.id in self.tracked:
                return
            data = {
                "id": spec.id,
                "service": spec.service,
                "version": spec.version,
                "revision": spec.revision,
                "boot": spec.boot,
                "env": spec.env,
                "cpu": spec.cpu,
                "memory_mb": spec.memory_mb,
                "gpu": spec.gpu,
                "group": spec.group,
            }
            actor = self._create(data)
            self.tracked[spec.id] = Tracked(spec=data, actor=actor, poll=actor.poll.remote())

    def stop(self, instance_id: str) -> None:
        with self._lock:
            tracked = self.tracked.get(instance_id)
            if tracked is None or tracked.term_at is not None:
                return
            tracked.term_at = time.time() + (self.drain_seconds if tracked.ready_seen else 0.0)

    def observe(self) -> list[ObservedInstance]:
        with self._observing:
            with self._lock:
                now = time.time()
                for tracked in list(self.tracked.values()):
                    self._supervise(tracked, now)
                polls = {t.poll: t for t in self.tracked.values() if t.poll is not None}
            answered: list[Any] = []
            if polls:
                answered, _ = ray.wait(list(polls), num_returns=len(polls), timeout=POLL_WAIT)
            with self._lock:
                for ref in answered:
                    tracked = polls[ref]
                    if self.tracked.get(tracked.spec["id"]) is not tracked:
                        continue
                    tracked.poll = None
                    try:
                        tracked.state = ray.get(ref)
                        tracked.placed = True
                    except RayActorError as exc:
                        self._actor_died(tracked, exc, now)
                targets = [
                    (t.spec["id"], t.state["host"], t.state["port"])
                    for t in self.tracked.values()
                    if t.placed and t.state.get("pid") and t.term_at is None
                ]
            answers = list(self.probes.map(self._probe, [(h, p) for _, h, p in targets]))
            cluster = ray.nodes()
            ready = {(i, h, p) for (i, h, p), ok in zip(targets, answers, strict=True) if ok}
            with self._lock:
                observed = []
                for tracked in self.tracked.values():
                    state = tracked.state
                    key = (tracked.spec["id"], state.get("host"), state.get("port"))
                    is_ready = key in ready and tracked.term_at is None
                    if is_ready:
                        tracked.ready_seen = True
                    elif state.get("pid") is None:
                        tracked.ready_seen = False
                    observed.append(self._observed(tracked, is_ready, cluster))
                for tracked in self.tracked.values():
                    if tracked.poll is None and tracked.recreate_at is None:
                        tracked.poll = tracked.actor.poll.remote()
                return observed

    def nodes(self) -> list[NodeInfo]:
        return self._nodes(ray.nodes())

    def _nodes(self, cluster: list[dict[str, Any]]) -> list[NodeInfo]:
        with self._lock:
            used: dict[str, list[dict[str, Any]]] = {}
            for tracked in self.tracked.values():
                if tracked.placed and tracked.recreate_at is None:
                    used.setdefault(tracked.state["node_id"], []).append(tracked.spec)
        nodes = []
        for node in cluster:
            if not node.get("Alive"):
                continue
            resources: dict[str, float] = node.get("Resources", {})
            mine = used.get(node["NodeID"], [])
            nodes.append(
                NodeInfo(
                    name=node_name(node),
                    ip=node["NodeManagerAddress"],
                    cpu=resources.get("CPU", 0.0),
                    memory_mb=int(resources.get("memory", 0) // MiB),
                    gpu=int(resources.get("GPU", 0)),
                    used_cpu=sum(s["cpu"] for s in mine),
                    used_memory_mb=sum(s["memory_mb"] for s in mine),
                    used_gpu=sum(s["gpu"] for s in mine),
                    group=node_group(node),
                    labels={k: str(v) for k, v in (node.get("Labels") or {}).items()},
                )
            )
        return nodes

    def logs(self, instance_id: str, tail: int) -> list[str]:
        with self._lock:
            tracked = self.tracked.get(instance_id)
        if tracked is None or tail <= 0 or not tracked.placed:
            return []
        try:
            lines: list[str] = ray.get(tracked.actor.logs.remote(tail), timeout=CALL_TIMEOUT)
        except (RayActorError, GetTimeoutError):
            return []
        return lines

    def shutdown(self, *, stop_instances: bool) -> None:
        self.probes.shutdown(wait=False)
        self.http.close()
        if not stop_instances:
            return
        with self._lock:
            tracked = list(self.tracked.values())
            self.tracked.clear()
        # Also the actors no controller adopted yet: no instance outlives the installation.
        known = {t.spec["id"] for t in tracked}
        actors = [(t.spec["id"], t.actor) for t in tracked] + [
            (name, ray.get_actor(name, namespace=self.namespace))
            for name in self._actor_names()
            if name not in known
        ]
        self._end(actors)

    # -- supervision -------------------------------------------------------------------
    def _create(self, spec: dict[str, Any]) -> Any:
        return self.remote.options(
            name=spec["id"],
            namespace=self.namespace,
            lifetime="detached",
            num_cpus=spec["cpu"],
            num_gpus=spec["gpu"],
            memory=spec["memory_mb"] * MiB,
            resources={f"{GROUP_RESOURCE}{spec['group']}": GROUP_SHARE},
            scheduling_strategy="SPREAD",
            max_restarts=0,
        ).remote(
            spec,
            namespace=self.namespace,
            node_env=self.node_env,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
        )

    def _supervise(self, tracked: Tracked, now: float) -> None:
        if tracked.term_at is not None:
            if now >= tracked.term_at:
                self.tracked.pop(tracked.spec["id"], None)
                # Ended off the reconciler's thread: a drain waits on the process.
                threading.Thread(
                    target=self._end, args=([(tracked.spec["id"], tracked.actor)],), daemon=True
                ).start()
            return
        if tracked.recreate_at is not None and now >= tracked.recreate_at:
            tracked.recreate_at = None
            tracked.actor = self._create(tracked.spec)
            tracked.poll = tracked.actor.poll.remote()

    def _actor_died(self, tracked: Tracked, exc: Exception, now: float) -> None:
        tracked.restarts += 1
        tracked.placed = False
        tracked.ready_seen = False
        node = tracked.state.get("node_id", "?")
        tracked.reason = f"actor died on node {node[:12]}: {str(exc).splitlines()[0][:200]}"
        tracked.state = {}
        delay = self.backoff.delay(tracked.restarts)
        tracked.recreate_at = now + delay
        log.warning(
            "instance %s: %s; created again in %.1fs", tracked.spec["id"], tracked.reason, delay
        )

    def _end(self, actors: list[tuple[str, Any]]) -> None:
        """Drain and end actors (named by instance id); back once Ray has let their names go,
        so neither an id placed again nor the next controller finds the old actor."""
        if not actors:
            return
        refs = [actor.terminate.remote() for _, actor in actors]
        try:
            ray.wait(refs, num_returns=len(refs), timeout=30)
        finally:
            for _, actor in actors:
                ray.kill(actor, no_restart=True)
        deadline = time.monotonic() + 30
        names = {name for name, _ in actors}
        while time.monotonic() < deadline and names & set(self._actor_names()):
            time.sleep(0.05)

    def _probe(self, target: tuple[str, int]) -> bool:
        host, port = target
        try:
            return self.http.get(f"http://{host}:{port}{READY_PATH}").status_code == 200
        except httpx.HTTPError:
            return False

    def _observed(
        self, tracked: Tracked, is_ready: bool, cluster: list[dict[str, Any]]
    ) -> ObservedInstance:
        state = tracked.state
        spec = tracked.spec
        restarts = tracked.restarts + int(state.get("restarts", 0))
        reason = state.get("reason") or tracked.reason
        if tracked.term_at is not None:
            status = InstanceStatus.TERMINATING
        elif not tracked.placed:
            if tracked.restarts:
                status = InstanceStatus.RESTARTING
            else:
                status = InstanceStatus.PENDING
                reason = self._no_room(spec, cluster)
        elif state.get("pid") is None:
            status = InstanceStatus.RESTARTING
        elif is_ready:
            status = InstanceStatus.RUNNING
        elif restarts:
            status = InstanceStatus.RESTARTING
        else:
            status = InstanceStatus.STARTING
        if status == InstanceStatus.RUNNING and reason and not reason.startswith("last restart"):
            reason = f"last restart: {reason}"
        started = state.get("started_at")
        return ObservedInstance(
            id=spec["id"],
            service=spec["service"],
            version=spec["version"],
            revision=spec["revision"],
            status=status,
            host=state.get("host", ""),
            port=state.get("port", 0),
            node=next((node_name(n) for n in cluster if n["NodeID"] == state.get("node_id")), ""),
            restarts=restarts,
            started_at=datetime.fromtimestamp(started, UTC) if started else None,
            reason=reason,
            pid=state.get("pid"),
            gpus=tuple(state.get("gpus") or ()),
        )

    def _no_room(self, spec: dict[str, Any], cluster: list[dict[str, Any]]) -> str:
        """Why Ray has not placed an instance yet: its group's nodes and what they have free."""
        group = spec["group"]
        nodes = [n for n in self._nodes(cluster) if n.group == group]
        need = f"needs {spec['cpu']:g} cpu, {spec['memory_mb']} MB, {spec['gpu']} GPU"
        if not nodes:
            return f"resource group {group} has no node ({need})"
        free = "; ".join(
            f"{n.name}: {n.cpu - n.used_cpu:g} cpu, {n.memory_mb - n.used_memory_mb} MB, "
            f"{n.gpu - n.used_gpu} GPU free"
            for n in nodes
        )
        return f"waiting for room in resource group {group}: {need} ({free})"

    # -- adoption ----------------------------------------------------------------------
    def _actor_names(self) -> list[str]:
        return [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == self.namespace
        ]

    def _adopt(self) -> None:
        for name in self._actor_names():
            try:
                actor = ray.get_actor(name, namespace=self.namespace)
                described: Any = actor.describe.remote()
                spec: dict[str, Any] = ray.get(described, timeout=CALL_TIMEOUT)
                state: dict[str, Any] = ray.get(actor.poll.remote(), timeout=CALL_TIMEOUT)
            except (ValueError, RayActorError, GetTimeoutError) as exc:
                log.warning("not adopting instance %s: %s", name, exc)
                continue
            # Serving before this controller started: a stop drains it.
            self.tracked[name] = Tracked(
                spec=spec, actor=actor, state=state, placed=True, ready_seen=bool(state["pid"])
            )
            log.info("adopted instance %s", name)


def node_name(node: dict[str, Any]) -> str:
    return f"{node['NodeManagerAddress']}-{node['NodeID'][:8]}"


def node_group(node: dict[str, Any]) -> str:
    """A node's resource group: its ``group:NAME`` custom resource, else its ``eas-group``
    label, else ``public``."""
    for name in node.get("Resources", {}):
        if name.startswith(GROUP_RESOURCE):
            return str(name[len(GROUP_RESOURCE) :])
    labels = node.get("Labels") or {}
    return str(labels.get(GROUP_LABEL, DEFAULT_RESOURCE_GROUP))
