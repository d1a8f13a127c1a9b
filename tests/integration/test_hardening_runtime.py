"""An instance that stops answering, and instances the controller lost track of.

Each test goes through a real installation (`eascmd server`) of its own data directory,
started with a short hang bound so a stuck instance is restarted within seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from eas_core.sdk import Instance
from tests.support.installation import (
    Installation,
    free_port,
    python_service,
    start_installation,
    wait_for,
)

HUNG_RESTART_SECONDS = 3
KEEPALIVE_MS = 1000


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("eas-hardening") / "data"
    data_dir.mkdir()
    running = start_installation(
        data_dir, extra_env={"EAS_HUNG_RESTART_SECONDS": str(HUNG_RESTART_SECONDS)}
    )
    yield running
    running.stop()


def deploy(installation: Installation, name: str, **extra: Any) -> str:
    metadata = {"rpc.keepalive": KEEPALIVE_MS, "rpc.worker_threads": 2, **extra.pop("metadata", {})}
    installation.client.create_service(python_service(name, metadata=metadata, **extra))
    installation.client.wait_until_running(name, timeout=90)
    return str(installation.client.describe_service(name).access_token)


def worker(installation: Installation, name: str, instance: str) -> Instance:
    rows = [w for w in installation.client.list_instances(name) if w.instance_name == instance]
    assert rows, f"instance {instance} is not listed any more"
    return rows[0]


def instance_processes(installation: Installation, service: str) -> dict[int, str]:
    """pid → instance id of every live process started for ``service`` by this installation."""
    root = str(installation.data_dir / "instances") + os.sep
    found = {}
    for proc in psutil.process_iter(["environ", "status"]):
        env = proc.info["environ"] or {}
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if env.get("EAS_SERVICE_NAME") == service and env.get("EAS_INSTANCE_DIR", "").startswith(
            root
        ):
            found[proc.pid] = env["EAS_INSTANCE_ID"]
    return found


def upstream_ports(installation: Installation, name: str) -> set[int]:
    document = httpx.get(
        f"{installation.gateway_url}/api/v1/servicediscovery/upstreams/{name}", timeout=5
    ).json()
    return {item["port"] for item in document["endpoints"]["items"]}


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/api/builtin/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not found in:\n{text}")


def hang(url: str, name: str, token: str, count: int) -> list[threading.Thread]:
    """``count`` callers, each on its own connection, sending the body that never returns."""

    def call() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the instance may be killed under it
            httpx.post(
                f"{url}/api/predict/{name}",
                content=b"hang",
                headers={"Authorization": token},
                timeout=30,
            )

    callers = [threading.Thread(target=call, daemon=True) for _ in range(count)]
    for caller in callers:
        caller.start()
    return callers


class PacedLoad:
    """Callers through the gateway, each recording (time sent, status, body) of every call,
    at most ``max_requests`` calls in all and ``max_seconds`` long."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        threads: int = 2,
        max_requests: int = 3000,
        max_seconds: float = 120.0,
        pace: float = 0.05,
    ) -> None:
        self.url, self.token, self.pace = url, token, pace
        self.answers: list[tuple[float, int, bytes]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> PacedLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stopping.is_set() and time.monotonic() < self.deadline:
                sent = time.monotonic()
                try:
                    answer = client.post(
                        self.url, content=b"pid", headers={"Authorization": self.token}
                    )
                    record = (sent, answer.status_code, answer.content)
                except httpx.HTTPError as exc:
                    record = (sent, 0, repr(exc).encode())
                with self.lock:
                    self.answers.append(record)
                    if len(self.answers) >= self.max_requests:
                        self.stopping.set()
                self.stopping.wait(self.pace)


def test_hung_instance_leaves_the_routes_and_is_restarted(
    installation: Installation, unique_name: str
) -> None:
    token = deploy(installation, unique_name, instances=2)
    victim, other = installation.client.list_instances(unique_name)
    (victim_pid,) = [
        pid
        for pid, instance in instance_processes(installation, unique_name).items()
        if instance == victim.instance_name
    ]
    victim_url = f"http://127.0.0.1:{victim.port}"
    url = f"{installation.gateway_url}/api/predict/{unique_name}"
    with PacedLoad(url, token) as load:
        wait_for(lambda: len(load.answers) >= 20, what="the load to start")
        hang(victim_url, unique_name, token, count=2)
        # Readiness means "can answer now": both worker threads stuck past the deadline.
        unready = wait_for(
            lambda: (
                (r := httpx.get(f"{victim_url}/api/builtin/ready", timeout=5)).status_code == 503
                and r
            ),
            timeout=30,
            what="the hung instance to report itself not ready",
        )
        stuck_seen = time.monotonic()
        assert f"all 2 worker threads busy for more than {KEEPALIVE_MS} ms" in unready.text
        assert metric(victim_url, "eas_busy_workers") == 2
        # While stuck it answers 503 at once, which the gateway retries on the other one.
        direct = httpx.post(
            f"{victim_url}/api/predict/{unique_name}",
            content=b"pid",
            headers={"Authorization": token},
            timeout=5,
        )
        assert direct.status_code == 503 and b"worker threads busy" in direct.content
        restarted = wait_for(
            lambda: (
                (w := worker(installation, unique_name, victim.instance_name)).restarts >= 1
                and w.ready
                and w
            ),
            timeout=60,
            what="the hung instance to be killed, restarted and ready",
        )
        assert "worker threads busy for more than" in restarted.reason
        new_url = f"http://127.0.0.1:{restarted.port}"
        served = httpx.post(
            f"{new_url}/api/predict/{unique_name}",
            content=b"pid",
            headers={"Authorization": token},
            timeout=10,
        )
        assert served.status_code == 200 and int(served.content) != victim_pid
        wait_for(
            lambda: restarted.port in upstream_ports(installation, unique_name),
            what="the restarted instance back in the route table",
        )
        # A few calls after it is back, so the load sees it serve again.
        back = len(load.answers)
        wait_for(
            lambda: len(load.answers) >= back + 20 or load.stopping.is_set(), what="more answers"
        )
        assert len(load.answers) >= back + 20, "the load ended before the instance came back"
    after_stuck = [a for a in load.answers if a[0] >= stuck_seen]
    assert after_stuck and all(status == 200 for _, status, _ in after_stuck), [
        a for a in after_stuck if a[1] != 200
    ]
    # Whatever failed did so while the victim's calls were still within their deadline.
    assert {status for _, status, _ in load.answers if status != 200} <= {408}
    print(
        f"\nhung instance: {len(load.answers)} calls, "
        f"{sum(1 for a in load.answers if a[1] != 200)} failed (all before it was seen stuck)"
    )
    log = installation.client.logs(unique_name, instance=victim.instance_name, tail=400)
    assert "worker threads busy for more than" in json.dumps(log.wire())
    table = installation.eascmd("w", unique_name).stdout
    assert "busy for more than" in table
    assert other.instance_name in table


def test_hung_worker_process_restarts_its_multi_process_instance(
    installation: Installation, unique_name: str
) -> None:
    # app_multi: 3 worker processes of 2 threads. 6 hanging calls on 6 connections: whatever
    # way the kernel spreads them, some process gets 2 and is stuck.
    token = deploy(installation, unique_name, processor_entry="app_multi.py")
    (instance,) = installation.client.list_instances(unique_name)
    before = instance_processes(installation, unique_name)
    assert len(before) == 4  # the supervisor and its 3 workers
    hang(f"http://127.0.0.1:{instance.port}", unique_name, token, count=6)
    restarted = wait_for(
        lambda: (
            (w := worker(installation, unique_name, instance.instance_name)).restarts >= 1
            and w.ready
            and w
        ),
        timeout=60,
        what="the instance with a stuck worker process to be restarted",
    )
    assert "worker process" in restarted.reason
    # The whole process group went: no worker of the old instance lingers on.
    after = instance_processes(installation, unique_name)
    assert len(after) == 4 and not set(after) & set(before)
    assert installation.predict(unique_name, b"echo:back", token).content == b"back"


def test_instance_that_stops_answering_its_probe_is_restarted(
    installation: Installation, unique_name: str
) -> None:
    deploy(installation, unique_name)
    (instance,) = installation.client.list_instances(unique_name)
    (pid,) = instance_processes(installation, unique_name)
    os.kill(pid, signal.SIGSTOP)  # alive, but answers nothing, not even its readiness probe
    try:
        restarted = wait_for(
            lambda: (
                (w := worker(installation, unique_name, instance.instance_name)).restarts >= 1
                and w.ready
                and w
            ),
            timeout=60,
            what="the frozen instance to be restarted",
        )
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGCONT)
    assert "did not answer its readiness probe" in restarted.reason
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_slow_processor_that_keeps_answering_is_never_restarted(
    installation: Installation, unique_name: str
) -> None:
    # Both worker threads always busy, each call well within the deadline, for longer than
    # the hang bound: slow is not hung.
    token = deploy(installation, unique_name)
    (instance,) = installation.client.list_instances(unique_name)
    url = f"{installation.gateway_url}/api/predict/{unique_name}"
    answers: list[int] = []
    lock = threading.Lock()
    ends = time.monotonic() + 2 * (HUNG_RESTART_SECONDS + KEEPALIVE_MS / 1000)

    def call_in_a_loop() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(40):
                if time.monotonic() >= ends:
                    return
                answer = client.post(url, content=b"sleep:600", headers={"Authorization": token})
                with lock:
                    answers.append(answer.status_code)

    callers = [threading.Thread(target=call_in_a_loop) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=120)
    assert answers and set(answers) == {200}
    after = worker(installation, unique_name, instance.instance_name)
    assert after.restarts == 0 and after.ready


def test_queue_length_falls_back_when_requests_finish(
    installation: Installation, unique_name: str
) -> None:
    token = deploy(installation, unique_name)
    (instance,) = installation.client.list_instances(unique_name)
    url = f"http://127.0.0.1:{instance.port}"
    call = threading.Thread(
        target=lambda: httpx.post(
            f"{url}/api/predict/{unique_name}",
            content=b"sleep:1500",
            headers={"Authorization": token},
            timeout=30,
        )
    )
    call.start()
    wait_for(lambda: metric(url, "eas_queue_length") == 1, what="the call to be counted")
    assert metric(url, "eas_busy_workers") == 1
    call.join(timeout=30)
    wait_for(lambda: metric(url, "eas_queue_length") == 0, timeout=10, what="the queue to empty")
    assert metric(url, "eas_busy_workers") == 0


def restart_controller(installation: Installation) -> None:
    old = installation.pid("controller")
    os.kill(old, signal.SIGKILL)
    wait_for(
        lambda: (
            installation.pid("controller") != old
            and httpx.get(f"{installation.controller_url}/api/v1/health").status_code == 200
        ),
        timeout=60,
        what="the controller to be restarted by the installation",
    )


def test_stray_instance_process_is_stopped_when_the_controller_starts(
    installation: Installation, unique_name: str
) -> None:
    """A controller that died between starting an instance and recording it left a process
    that nothing tracks: the next controller stops it."""
    token = deploy(installation, unique_name)
    (instance,) = installation.client.list_instances(unique_name)
    source = installation.data_dir / "instances" / instance.instance_name
    record = json.loads((source / "record.json").read_text())
    stray_id = f"{unique_name}-1-5a5a5a5a"
    directory = installation.data_dir / "instances" / stray_id
    directory.mkdir()
    shutil.copy(source / "boot.json", directory / "boot.json")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
    env.update(record["env"])
    env.update(
        EAS_INSTANCE_ID=stray_id,
        EAS_HOST="127.0.0.1",
        EAS_PORT=str(port),
        EAS_INSTANCE_DIR=str(directory),
        # The node's store and cache, which the local backend gives every instance it starts.
        EAS_ARTEFACT_STORE=str(installation.data_dir / "artefacts"),
        EAS_CACHE_DIR=str(installation.data_dir / "cache"),
        PYTHONUNBUFFERED="1",
    )
    with open(installation.data_dir.parent / f"{stray_id}.log", "wb") as log:
        stray = subprocess.Popen(
            [sys.executable, "-m", "eas_core.runtime.boot", str(directory / "boot.json")],
            env=env,
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/api/builtin/ready").status_code == 200,
            timeout=60,
            what="the stray instance to serve",
        )
        assert len(instance_processes(installation, unique_name)) == 2
        restart_controller(installation)
        wait_for(lambda: stray.poll() is not None, timeout=30, what="the stray to be stopped")
    finally:
        if stray.poll() is None:
            stray.kill()
        stray.wait()
    assert not directory.exists()
    assert [w.instance_name for w in installation.client.list_instances(unique_name)] == [
        instance.instance_name
    ]
    assert list(instance_processes(installation, unique_name).values()) == [instance.instance_name]
    assert installation.predict(unique_name, b"echo:one", token).content == b"one"


def test_instance_started_before_its_pid_was_recorded_is_adopted(
    installation: Installation, unique_name: str
) -> None:
    """A controller that died after writing an instance's record (with its intent to start)
    and starting it, but before recording its pid: the next controller adopts the process."""
    deploy(installation, unique_name, instances=2)
    wanted = sorted(w.instance_name for w in installation.client.list_instances(unique_name))
    processes = instance_processes(installation, unique_name)
    victim = wanted[1]
    path = installation.data_dir / "instances" / victim / "record.json"
    # Hold the installation still so the controller is not restarted before the record is
    # set back to the state of the crash window.
    installation.process.send_signal(signal.SIGSTOP)
    try:
        os.kill(installation.pid("controller"), signal.SIGKILL)
        record = json.loads(path.read_text())
        record.update(pid=None, launching=True, started_at=None)
        path.write_text(json.dumps(record))
    finally:
        installation.process.send_signal(signal.SIGCONT)
    restart_controller(installation)
    wait_for(
        lambda: installation.client.describe_service(unique_name).running_instance == 2,
        timeout=60,
        what="both instances ready",
    )
    # Exactly the wanted instances, and the very processes that ran before.
    assert sorted(w.instance_name for w in installation.client.list_instances(unique_name)) == (
        wanted
    )
    assert instance_processes(installation, unique_name) == processes
    adopted = json.loads(path.read_text())
    assert adopted["pid"] in processes and not adopted["launching"]


def test_instance_files_are_private(installation: Installation, unique_name: str) -> None:
    # The record and the boot spec hold the service token; the log may hold anything.
    deploy(installation, unique_name)
    (instance,) = installation.client.list_instances(unique_name)
    root = installation.data_dir / "instances"
    directory = root / instance.instance_name

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(root) == 0o700
    assert mode(directory) == 0o700
    assert mode(directory / "record.json") == 0o600
    assert mode(directory / "boot.json") == 0o600
    assert mode(installation.data_dir / "logs") == 0o700
    assert mode(installation.data_dir / "logs" / f"{instance.instance_name}.log") == 0o600
