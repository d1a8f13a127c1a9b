"""The runtime's view of its worker threads: readiness of a stuck instance, busy/queue gauges."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from eas_core.config import RuntimeSettings
from eas_core.http.server import Request, Response
from eas_core.runtime.app import RuntimeApp
from eas_core.runtime.occupancy import Occupancy, shared_table
from eas_core.spec.paths import STUCK_SECONDS_HEADER
from processors.base import RequestContext
from tests.support.installation import wait_for

DEADLINE_MS = 100


class GateProcessor:
    """Each call waits until the gate opens (or at most 30 s, so no test can hang)."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def load(self, model_entry: str, model_config: str) -> None:
        pass

    def process(self, body: bytes, ctx: RequestContext) -> tuple[bytes, int]:
        if body == b"wait":
            self.gate.wait(30)
        return body, 200


def make_app(threads: int) -> tuple[RuntimeApp, GateProcessor]:
    processor = GateProcessor()
    settings = RuntimeSettings(service_name="s", keepalive_ms=DEADLINE_MS, max_queue_size=8)
    app = RuntimeApp(processor, settings, threads)
    app.ready = True
    return app, processor


def predict(body: bytes) -> Request:
    return Request("POST", "/api/predict/s", "", {}, body, True)


def gauge(app: RuntimeApp, name: str) -> float:
    for line in app.metrics.render().decode().splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}")


async def settle(app: RuntimeApp) -> None:
    """Let the loop run the done-callbacks of calls that ended on worker threads."""
    for _ in range(300):
        if app.admission.in_flight == 0:
            return
        await asyncio.sleep(0.01)


def test_all_threads_stuck_past_the_deadline_make_the_instance_unready() -> None:
    app, processor = make_app(threads=2)

    async def scenario() -> tuple[list[Response], Response, Response, Response, Response]:
        timed_out = await asyncio.gather(*(app.handle(predict(b"wait")) for _ in range(2)))
        # Stuck from when the younger call (its thread started a little after admission)
        # passed the deadline.
        unready = await asyncio.to_thread(
            wait_for,
            lambda: (r := app.builtin("ready")).status == 503 and r,
            10,
            0.01,
            "the instance to turn unready",
        )
        refused = await app.handle(predict(b"hello"))
        processor.gate.set()
        await settle(app)
        return timed_out, unready, refused, app.builtin("ready"), await app.handle(predict(b"hi"))

    timed_out, unready, refused, ready, answered = asyncio.run(scenario())
    assert [r.status for r in timed_out] == [408, 408]
    assert unready.status == 503
    assert unready.body == f"all 2 worker threads busy for more than {DEADLINE_MS} ms".encode()
    (stuck_for,) = [v for k, v in unready.headers if k == STUCK_SECONDS_HEADER]
    assert float(stuck_for) >= 0
    # Stuck: answered at once with the reason, so the gateway tries another instance.
    assert refused.status == 503 and b"worker threads busy" in refused.body
    assert ready.status == 200 and answered.status == 200 and answered.body == b"hi"
    app.close()


def test_one_free_thread_keeps_the_instance_ready() -> None:
    app, processor = make_app(threads=2)

    async def scenario() -> tuple[Response, Response, Response]:
        timed_out = await app.handle(predict(b"wait"))
        return timed_out, app.builtin("ready"), await app.handle(predict(b"free"))

    timed_out, ready, answered = asyncio.run(scenario())
    processor.gate.set()
    assert timed_out.status == 408
    assert ready.status == 200 and answered.body == b"free"
    app.close()


def test_busy_workers_and_queue_length_follow_the_calls() -> None:
    app, processor = make_app(threads=2)

    async def scenario() -> tuple[float, float, float, float]:
        call = asyncio.ensure_future(app.handle(predict(b"wait")))
        await asyncio.sleep(0)
        await asyncio.to_thread(
            wait_for, lambda: gauge(app, "eas_busy_workers") == 1, 10, 0.01, "a busy worker"
        )
        during = gauge(app, "eas_busy_workers"), gauge(app, "eas_queue_length")
        processor.gate.set()
        await call
        await settle(app)
        return *during, gauge(app, "eas_busy_workers"), gauge(app, "eas_queue_length")

    busy, queued, busy_after, queued_after = asyncio.run(scenario())
    assert (busy, queued) == (1, 1)
    assert (busy_after, queued_after) == (0, 0)
    assert gauge(app, "eas_workers") == 2
    app.close()


def test_a_stuck_worker_process_is_seen_from_its_siblings() -> None:
    # Two worker processes share one table; the second one has both threads stuck.
    table = shared_table(2)
    first = Occupancy(2, deadline_ms=0, table=table, slot=0)
    second = Occupancy(2, deadline_ms=0, table=table, slot=1)
    release = threading.Event()

    def call(occupancy: Occupancy) -> None:
        occupancy.enter()
        release.wait(30)
        occupancy.leave()

    stuck = [threading.Thread(target=call, args=(second,)) for _ in range(2)]
    for thread in stuck:
        thread.start()
    try:
        found = wait_for(first.stuck, timeout=10, interval=0.01, what="the sibling to be stuck")
        assert found.reason == "worker process 2 of 2: all 2 worker threads busy for more than 0 ms"
        # The healthy process still takes calls; only the stuck one refuses them.
        assert first.stuck(here_only=True) is None
        assert second.stuck(here_only=True) is not None
    finally:
        release.set()
        for thread in stuck:
            thread.join()
    assert first.stuck() is None and second.stuck() is None


# The child only writes one number and exits at once.
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_the_shared_table_is_shared_with_forked_children() -> None:
    table = shared_table(2)
    pid = os.fork()
    if pid == 0:
        table[1] = 42.0
        os._exit(0)
    os.waitpid(pid, 0)
    assert table[1] == 42.0 and table[0] == 0.0
