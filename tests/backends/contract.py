"""The contract every backend passes, whatever runs its instances.

:class:`BackendContract` holds the tests; its ``node`` fixture runs each of them against
every implementation in :data:`HARNESSES` (one per name in the backend registry). A backend
is built the way the controller builds it — by name, from the controller settings — and its
instances are real: the probe processor (tests/support/processors/probe) snapshotted into the
installation's artefact store and started through the real boot path (eas_core.runtime.boot).
A new backend joins by adding its :class:`Harness`; it is done when this suite passes.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from eas_core.artefacts import ArtefactCache, ArtefactStore
from eas_core.artefacts.packages import snapshot_packages
from eas_core.config import ControllerSettings, MiB
from eas_core.controller.backends.base import Backend, InstanceSpec, ObservedInstance
from eas_core.controller.backends.local import LocalBackend
from eas_core.controller.backends.registry import build_backend
from eas_core.spec.instance import boot_spec, runtime_environment
from eas_core.spec.service import parse_description
from eas_core.spec.status import InstanceStatus
from tests.support.installation import PROCESSORS, wait_for
from tests.support.raycluster import RAY_ENV, RayCluster

NODE_CPU = 2.0
NODE_MEMORY_MB = 1024
GROUP = "contract"
DRAIN_SECONDS = 3.0
BOOT_TIMEOUT = 90.0  # a loaded test machine boots an instance slowly


@dataclass(frozen=True)
class Harness:
    """How the suite drives one backend: its controller settings; how to crash one of its
    instances from outside (the way a segfault or the OOM killer would); and what the exit of
    a controller process does for a backend built in it — here every "controller" is this
    test process, and an earlier one's leftovers are released once the last one is done."""

    name: str  # its name in eas_core.controller.backends.registry.BACKENDS
    settings: Callable[[Path], ControllerSettings]
    crash: Callable[[ObservedInstance], None]
    release: Callable[[Backend], None]
    # Ends what ``settings`` started for the suite (a cluster), once the suite is done.
    teardown: Callable[[], None] = lambda: None


def local_settings(data_dir: Path) -> ControllerSettings:
    return ControllerSettings(
        backend="local",
        data_dir=data_dir,
        host="127.0.0.1",
        node_cpu=NODE_CPU,
        node_memory_mb=NODE_MEMORY_MB,
        node_gpu=0,
        node_resource_group=GROUP,
        drain_seconds=DRAIN_SECONDS,
        restart_backoff_initial=0.2,
        restart_backoff_max=1.0,
    )


def kill_process(instance: ObservedInstance) -> None:
    assert instance.pid is not None, instance
    os.kill(instance.pid, signal.SIGKILL)


def reap_children(backend: Backend) -> None:
    """The instance processes an earlier local backend started are this process's children:
    once stopped (by the last backend), they are waited for, as init would."""
    assert isinstance(backend, LocalBackend)
    for child in backend.children.values():
        child.wait(timeout=30)


_ray: list[RayCluster] = []


def ray_settings(data_dir: Path) -> ControllerSettings:
    """A one-node Ray cluster on this machine (started once for the suite), its node in the
    group under test."""
    if not _ray:
        os.environ.update(RAY_ENV)
        cluster = RayCluster()
        _ray.append(cluster)
        cluster.start_node(GROUP, cpu=int(NODE_CPU), memory_mb=NODE_MEMORY_MB)
    return ControllerSettings(
        backend="ray",
        ray_address=_ray[0].address,
        data_dir=data_dir,
        drain_seconds=DRAIN_SECONDS,
        restart_backoff_initial=0.2,
        restart_backoff_max=1.0,
    )


def stop_ray() -> None:
    import ray  # imported only by the suite's ray harness, like the backend does

    ray.shutdown()  # a driver left connected to a stopped cluster ends its own process
    while _ray:
        _ray.pop().stop()


def nothing_to_release(backend: Backend) -> None:
    """A Ray backend holds no process of this one: its actors belong to the cluster."""


HARNESSES = [
    Harness("local", local_settings, kill_process, reap_children),
    Harness("ray", ray_settings, kill_process, nothing_to_release, stop_ray),
]


class Node:
    """One backend under test, with the artefact store it fetches from, and every backend
    built over the same data (a restarted controller builds another)."""

    def __init__(self, harness: Harness, data_dir: Path) -> None:
        self.harness = harness
        self.settings = harness.settings(data_dir)
        self.built: list[Backend] = []
        self.backend = self.restart()
        self.boot, self.env = self._snapshot()

    def restart(self) -> Backend:
        """What a new controller does: build the backend again, over what runs."""
        backend = build_backend(self.settings)
        self.built.append(backend)
        self.backend = backend
        return backend

    def _snapshot(self) -> tuple[dict[str, object], dict[str, str]]:
        description = parse_description(
            {
                "name": "contract",
                "processor_type": "python",
                "processor_path": str(PROCESSORS / "probe"),
                "processor_entry": "app.py",
                "metadata": {"instance": 1},
            }
        )
        limit = self.settings.max_artefact_bytes
        artefacts = snapshot_packages(
            description,
            ArtefactStore(self.settings.artefact_dir),
            max_bytes=limit,
            cache=ArtefactCache(self.settings.cache_dir, max_bytes=limit),
        )
        boot = boot_spec(description, version=1, artefacts=artefacts)
        env = runtime_environment(description, version=1, token=None, max_body_bytes=MiB)
        return boot.model_dump(mode="json"), env

    def spec(self, *, cpu: float = 0.5, memory_mb: int = 128) -> InstanceSpec:
        return InstanceSpec(
            id=f"contract-1-{secrets.token_hex(4)}",
            service="contract",
            version=1,
            revision=0,
            boot=self.boot,
            env=self.env,
            cpu=cpu,
            memory_mb=memory_mb,
            gpu=0,
            group=GROUP,
        )

    def find(self, instance_id: str) -> ObservedInstance | None:
        return next((o for o in self.backend.observe() if o.id == instance_id), None)

    def wait(
        self, instance_id: str, done: Callable[[ObservedInstance], bool], what: str
    ) -> ObservedInstance:
        def check() -> ObservedInstance | None:
            found = self.find(instance_id)
            return found if found is not None and done(found) else None

        found: ObservedInstance = wait_for(check, timeout=BOOT_TIMEOUT, interval=0.1, what=what)
        return found

    def running(self, spec: InstanceSpec) -> ObservedInstance:
        self.backend.place(spec)
        return self.wait(spec.id, lambda o: o.is_ready, f"{spec.id} to be ready")

    def close(self) -> None:
        *earlier, last = self.built
        for backend in earlier:
            backend.shutdown(stop_instances=False)
        last.shutdown(stop_instances=True)
        for backend in earlier:
            self.harness.release(backend)


def ready(instance: ObservedInstance) -> int:
    return httpx.get(f"http://{instance.host}:{instance.port}/api/builtin/ready").status_code


def predict(instance: ObservedInstance, body: bytes) -> httpx.Response:
    url = f"http://{instance.host}:{instance.port}/api/predict/{instance.service}"
    return httpx.post(url, content=body, timeout=10)


class BackendContract:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def harnesses(cls) -> Iterator[None]:
        yield
        for harness in HARNESSES:
            harness.teardown()

    @pytest.fixture(params=HARNESSES, ids=lambda h: h.name)
    def node(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
        node = Node(request.param, tmp_path / "data")
        yield node
        node.close()

    def test_a_placed_instance_reaches_running_and_answers(self, node: Node) -> None:
        spec = node.spec()
        node.backend.place(spec)
        placed = node.find(spec.id)
        assert placed is not None and placed.status in (
            InstanceStatus.PENDING,
            InstanceStatus.STARTING,
        )
        instance = node.running(spec)
        assert (instance.service, instance.version, instance.revision) == ("contract", 1, 0)
        assert instance.status == InstanceStatus.RUNNING and instance.restarts == 0
        assert instance.started_at is not None
        assert ready(instance) == 200
        answer = predict(instance, b"echo:through the real boot path")
        assert (answer.status_code, answer.content) == (200, b"through the real boot path")

    def test_placing_twice_is_placing_once(self, node: Node) -> None:
        spec = node.spec(cpu=0.5)
        node.backend.place(spec)
        node.backend.place(spec)
        node.running(spec)
        node.backend.place(spec)
        assert [o.id for o in node.backend.observe()] == [spec.id]
        [used] = node.backend.nodes()
        assert used.used_cpu == 0.5

    def test_a_stopped_instance_leaves_at_once_then_drains(self, node: Node) -> None:
        spec = node.spec()
        node.running(spec)
        node.backend.stop(spec.id)
        node.backend.stop(spec.id)  # stopping twice is stopping once
        node.backend.stop("contract-1-unknown")  # and stopping what is not there, nothing
        leaving = node.find(spec.id)
        assert leaving is not None
        assert leaving.status == InstanceStatus.TERMINATING and not leaving.is_ready
        # Out of the routes at once, it still answers what reaches it while it drains.
        assert predict(leaving, b"echo:draining").content == b"draining"
        wait_for(lambda: node.find(spec.id) is None, timeout=BOOT_TIMEOUT, what=f"{spec.id} to go")
        with pytest.raises(httpx.TransportError):
            ready(leaving)

    def test_a_restarted_controller_adopts_what_runs(self, node: Node) -> None:
        spec = node.spec()
        before = node.running(spec)
        node.backend.shutdown(stop_instances=False)
        node.restart()
        after = node.find(spec.id)
        assert after is not None
        assert (after.pid, after.port, after.restarts) == (before.pid, before.port, 0)
        after = node.wait(spec.id, lambda o: o.is_ready, "the adopted instance to be ready")
        assert after.pid == before.pid
        assert predict(after, b"echo:adopted").content == b"adopted"
        [usage] = node.backend.nodes()
        assert usage.used_cpu == spec.cpu

    def test_nodes_report_capacity_usage_and_resource_group(self, node: Node) -> None:
        [empty] = node.backend.nodes()
        assert (empty.cpu, empty.memory_mb, empty.gpu) == (NODE_CPU, NODE_MEMORY_MB, 0)
        assert (empty.used_cpu, empty.used_memory_mb, empty.used_gpu) == (0, 0, 0)
        assert empty.group == GROUP
        first, second = node.spec(cpu=0.5, memory_mb=100), node.spec(cpu=1.0, memory_mb=200)
        node.running(first)
        node.running(second)
        # Does not fit next to them: waits, and uses nothing meanwhile.
        node.backend.place(node.spec(cpu=1.0, memory_mb=100))
        node.backend.observe()
        nodes = node.backend.nodes()
        assert sum(n.cpu for n in nodes) == NODE_CPU
        assert sum(n.memory_mb for n in nodes) == NODE_MEMORY_MB
        assert sum(n.used_cpu for n in nodes) == first.cpu + second.cpu
        assert sum(n.used_memory_mb for n in nodes) == first.memory_mb + second.memory_mb
        assert {n.group for n in nodes} == {GROUP}
        # A Pending instance may be on no node yet; every other one is on a reported node.
        placed = [o for o in node.backend.observe() if o.status != InstanceStatus.PENDING]
        assert len(placed) == 2
        assert {o.node for o in placed} <= {n.name for n in nodes}

    def test_an_instance_output_is_readable_in_its_logs(self, node: Node) -> None:
        spec = node.spec()
        node.running(spec)
        lines = node.backend.logs(spec.id, 200)
        assert "[INFO] Service start successfully" in lines
        assert node.backend.logs(spec.id, 1) == lines[-1:]
        assert node.backend.logs(spec.id, 0) == []
        assert node.backend.logs("contract-1-unknown", 10) == []
        assert node.backend.logs("../../etc/passwd", 10) == []

    def test_a_crashed_instance_restarts_and_says_why(self, node: Node) -> None:
        spec = node.spec()
        node.harness.crash(node.running(spec))
        seen: list[InstanceStatus] = []

        def back() -> bool:
            found = node.find(spec.id)
            assert found is not None, "a crashed instance is restarted, not forgotten"
            seen.append(found.status)
            return found.is_ready and found.restarts == 1

        wait_for(back, timeout=BOOT_TIMEOUT, interval=0.05, what="the restarted instance")
        assert InstanceStatus.RESTARTING in seen, seen
        restarted = node.find(spec.id)
        assert restarted is not None and restarted.restarts == 1 and restarted.reason, restarted
        assert predict(restarted, b"echo:again").content == b"again"

    def test_an_instance_that_does_not_fit_is_pending_until_room_is_made(self, node: Node) -> None:
        big = node.spec(cpu=1.5)
        node.running(big)
        waiting = node.spec(cpu=1.0)
        node.backend.place(waiting)
        pending = node.find(waiting.id)
        assert pending is not None and pending.status == InstanceStatus.PENDING
        assert pending.reason, "a Pending instance says what it waits for"
        [usage] = node.backend.nodes()
        assert usage.used_cpu == big.cpu
        node.backend.stop(big.id)
        node.wait(waiting.id, lambda o: o.is_ready, "the waiting instance to start")

    def test_nodes_and_logs_answer_other_threads_while_observe_runs(self, node: Node) -> None:
        serving = node.spec(cpu=0.5)
        node.running(serving)
        # Many instances waiting for room (too big to ever fit): every read walks them all.
        waiting = [node.spec(cpu=NODE_CPU * 2) for _ in range(50)]
        for spec in waiting:
            node.backend.place(spec)
        failures: list[BaseException] = []
        done = threading.Event()

        def hammer() -> None:
            try:
                while not done.is_set():
                    for n in node.backend.nodes():
                        # Only the serving instance uses the node: waiting ones hold nothing.
                        assert n.used_cpu == serving.cpu, n
                    assert "[INFO] Service start successfully" in node.backend.logs(serving.id, 50)
            except BaseException as exc:  # handed to the test thread
                failures.append(exc)

        interval = sys.getswitchinterval()
        # Switch threads far more often than usual, so unguarded shared state shows.
        sys.setswitchinterval(1e-5)
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        try:
            for thread in threads:
                thread.start()
            for _ in range(30):
                # The reconciler's side: records come and go while the others read them.
                churn = [node.spec(cpu=NODE_CPU * 2) for _ in range(3)]
                for spec in churn:
                    node.backend.place(spec)
                node.backend.observe()
                for spec in churn:
                    node.backend.stop(spec.id)
                node.backend.observe()
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=60)
            sys.setswitchinterval(interval)
        assert not any(thread.is_alive() for thread in threads)
        assert not failures, [repr(f) for f in failures]
        for spec in waiting:
            node.backend.stop(spec.id)
        assert [o.id for o in node.backend.observe()] == [serving.id]
