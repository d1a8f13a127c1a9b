"""Server-side batching (``rpc.batching``) through a real installation.

The batching test processor (tests/support/processors/batch) answers each request with the
size of the batch it ran in, so a caller sees how requests were gathered. Concurrent callers
are released together by a barrier; what they must see holds however the machine schedules
them (a batch never exceeds ``rpc.max_batch_size``; each caller gets its own answer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.installation import (
    PROCESSORS,
    Installation,
    metric,
    python_service,
    wait_for,
)

MAX_BATCH = 4


@dataclass
class Service:
    name: str
    token: str
    direct: str  # the instance's base URL

    def post(self, body: bytes, gateway: str | None = None) -> httpx.Response:
        base = gateway or self.direct
        return httpx.post(
            f"{base}/api/predict/{self.name}",
            content=body,
            headers={"Authorization": self.token},
            timeout=60,
        )

    def together(self, bodies: list[bytes], gateway: str | None = None) -> list[httpx.Response]:
        """Send every body at once, one thread each; the answers in the bodies' order."""
        barrier = threading.Barrier(len(bodies))

        def one(body: bytes) -> httpx.Response:
            barrier.wait(timeout=30)
            return self.post(body, gateway)

        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(one, bodies))

    def metric(self, name: str) -> float:
        return metric(f"{self.direct}/api/builtin/metrics", name, service=self.name)


def deploy(installation: Installation, name: str, **metadata: Any) -> Service:
    document = python_service(
        name,
        processor_path=str(PROCESSORS / "batch"),
        metadata={"rpc.batching": True, "rpc.worker_threads": 1, **metadata},
    )
    installation.client.create_service(document)
    installation.client.wait_until_running(name, timeout=90)
    token = str(installation.client.describe_service(name)["AccessToken"])
    instance = installation.client.list_instances(name)[0]
    return Service(name, token, f"http://{instance['IP']}:{instance['Port']}")


@pytest.fixture(scope="module")
def gathered(installation: Installation) -> Iterator[Service]:
    """Batches of up to MAX_BATCH, each waiting up to a second to fill."""
    yield from _service(
        installation,
        "batching_gathered",
        **{"rpc.max_batch_size": MAX_BATCH, "rpc.max_batch_timeout": 1000},
    )


@pytest.fixture(scope="module")
def immediate(installation: Installation) -> Iterator[Service]:
    """Timeout 0: a batch holds only what arrived together; a 1 s deadline."""
    yield from _service(
        installation,
        "batching_immediate",
        **{
            "rpc.max_batch_size": MAX_BATCH,
            "rpc.max_batch_timeout": 0,
            "rpc.keepalive": 1000,
        },
    )


def _service(installation: Installation, name: str, **metadata: Any) -> Iterator[Service]:
    service = deploy(installation, name, **metadata)
    yield service
    installation.client.delete_service(name)
    installation.client.wait_until_deleted(name, timeout=120)


def test_concurrent_callers_get_their_own_answers_in_bounded_batches(
    gathered: Service,
) -> None:
    before = gathered.metric("eas_batch_size_sum")
    bodies = [f"caller-{i}".encode() for i in range(16)]
    answers = gathered.together(bodies)
    assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers]
    seen = [a.json() for a in answers]
    assert [s["echo"] for s in seen] == [b.decode() for b in bodies]
    sizes = [s["batch"] for s in seen]
    assert max(sizes) <= MAX_BATCH
    assert max(sizes) > 1, sizes
    # Every request ran in some batch, and the histogram counted each of them once.
    assert gathered.metric("eas_batch_size_sum") - before == 16
    # No batch over MAX_BATCH: every batch counted falls in the bucket le=4.
    url = f"{gathered.direct}/api/builtin/metrics"
    within = metric(url, "eas_batch_size_bucket", service=gathered.name, le=f"{MAX_BATCH:.1f}")
    assert within == gathered.metric("eas_batch_size_count") > 0


def test_a_bad_item_fails_alone(gathered: Service, installation: Installation) -> None:
    # A full batch runs at once: these four share one processor call.
    answers = gathered.together([b"a", b"bad", b"b", b"c"], installation.gateway_url)
    assert [a.status_code for a in answers] == [200, 400, 200, 200], [a.text for a in answers]
    assert answers[1].text == "this item is bad"
    assert [answers[i].json()["echo"] for i in (0, 2, 3)] == ["a", "b", "c"]
    assert {answers[i].json()["batch"] for i in (0, 2, 3)} == {MAX_BATCH}


def test_an_exception_fails_every_request_of_its_batch(gathered: Service) -> None:
    answers = gathered.together([b"a", b"boom", b"b", b"c"])
    assert [a.status_code for a in answers] == [400] * 4
    assert {a.text for a in answers} == {"RuntimeError: the batch of 4 held a boom"}
    # The instance goes on serving.
    assert gathered.together([b"after"] * 4)[0].json()["echo"] == "after"


def test_the_timeout_decides_whether_a_later_request_joins(
    gathered: Service, immediate: Service
) -> None:
    for service, size in ((gathered, 2), (immediate, 1)):
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(service.post, b"sleep:300")
            time.sleep(0.1)
            second = pool.submit(service.post, b"second")
            answers = [first.result(), second.result()]
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        assert [a.json()["batch"] for a in answers] == [size, size], service.name


def test_deadline_still_answers_408_under_batching(immediate: Service) -> None:
    late = immediate.post(b"sleep:2500")
    assert late.status_code == 408 and "processing exceeded 1000 ms" in late.text
    # Once the stuck batch ends, the instance answers again.
    wait_for(
        lambda: immediate.post(b"later").status_code == 200,
        timeout=30,
        what="the instance to answer after the late batch",
    )


def test_a_processor_without_process_batch_is_refused(
    installation: Installation, unique_name: str
) -> None:
    installation.client.create_service(python_service(unique_name, metadata={"rpc.batching": True}))
    info = wait_for(
        lambda: (
            (d := installation.client.describe_service(unique_name))["Status"] == "Failed" and d
        ),
        timeout=60,
        what="the service to fail",
    )
    assert "metadata.rpc.batching: ProbeProcessor cannot run batches" in info["Message"]
    assert "process_batch" in installation.client.list_instances(unique_name)[0]["Reason"]
