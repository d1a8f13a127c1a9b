"""The data path's edge against hostile and unlucky callers, through real processes.

Everything here runs against a real `eascmd server` installation with default settings
(the one shared by the whole test run), raw sockets for the byte-level cases. The limits that
need small timeouts live in test_hardening_limits.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise

import httpx
import psutil
import pytest

from eas_core.auth.tokens import sign
from eas_core.sdk import InstanceStatus
from tests.support import rawhttp
from tests.support.installation import (
    PROCESSORS,
    Installation,
    metric,
    python_service,
    wait_for,
)
from tests.support.load import SteadyLoad

MiB = 1024 * 1024
EDGE = {"processor_path": str(PROCESSORS / "edge"), "processor_entry": "app.py"}


def deploy(installation: Installation, name: str, instances: int = 1) -> str:
    installation.client.create_service(python_service(name, instances=instances, **EDGE))
    installation.client.wait_until_running(name, timeout=90)
    return str(installation.client.describe_service(name).access_token)


@pytest.fixture(scope="module")
def edge(installation: Installation) -> Iterator[tuple[str, str, int]]:
    """One running edge-processor service: name, token, and its instance's port."""
    name = "hardening_edge"
    token = deploy(installation, name)
    port = int(installation.client.list_instances(name)[0].port)
    yield name, token, port
    installation.client.delete_service(name)


def restarts(installation: Installation, name: str) -> int:
    return sum(int(w.restarts) for w in installation.client.list_instances(name))


def gateway_metric(installation: Installation, prefix: str) -> float:
    """The sum of the gateway's samples whose line starts with ``prefix``."""
    text = httpx.get(f"{installation.gateway_url}/api/builtin/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


# -- a poison request kills one instance, not all of them -------------------------------------


def test_poison_request_kills_one_instance_and_other_callers_see_no_failure(
    installation: Installation, unique_name: str
) -> None:
    token = deploy(installation, unique_name, instances=3)
    url = f"{installation.gateway_url}/api/predict/{unique_name}"
    with SteadyLoad(url, token, b"ordinary", threads=3, max_seconds=90) as load:
        wait_for(lambda: len(load.result.answers) >= 30, what="the load to run")
        poison = installation.predict(unique_name, b"poison", token)
        # The instance died mid-request: not retried elsewhere, answered 502 naming it.
        assert poison.status_code == 502, poison.text
        instances = {w.instance_name for w in installation.client.list_instances(unique_name)}
        assert any(name in poison.text for name in instances), poison.text
        wait_for(
            lambda: (
                restarts(installation, unique_name) >= 1
                and all(
                    w.status == InstanceStatus.RUNNING
                    for w in installation.client.list_instances(unique_name)
                )
            ),
            timeout=60,
            what="the killed instance to be running again",
        )
        seen = len(load.result.answers)
        wait_for(lambda: len(load.result.answers) >= seen + 30, what="more calls after it")
    killed = restarts(installation, unique_name)
    failed = Counter(a[1] for a in load.result.failures)
    print(f"poison: instances killed {killed}, callers {len(load.result.answers)} calls, {failed}")
    text = httpx.get(f"{installation.gateway_url}/api/builtin/metrics").text
    print(*[line for line in text.splitlines() if "upstream" in line and "_total{" in line])
    assert killed == 1
    assert load.result.failures == [], load.result.failures[:5]
    prefix = f'eas_gateway_upstream_failures_total{{reason="closed",service="{unique_name}"}}'
    assert gateway_metric(installation, prefix) == 1


def test_full_instance_is_retried_on_another_and_counted(
    installation: Installation, unique_name: str
) -> None:
    metadata = {"rpc.max_queue_size": 1, "rpc.worker_threads": 1}
    installation.client.create_service(
        python_service(unique_name, instances=2, metadata=metadata, **EDGE)
    )
    installation.client.wait_until_running(unique_name, timeout=90)
    token = installation.client.describe_service(unique_name).access_token
    ports = [w.port for w in installation.client.list_instances(unique_name)]
    urls = [f"http://127.0.0.1:{port}/api/builtin/metrics" for port in ports]
    with ThreadPoolExecutor(4) as pool:
        # Calls alternate between the two instances: each takes one running and one queued.
        holders = [
            pool.submit(installation.predict, unique_name, b"hold:2000:", token) for _ in range(4)
        ]
        wait_for(
            lambda: sum(metric(u, "eas_queue_length", service=unique_name) for u in urls) == 4,
            what="both instances to hold one call running and one queued",
        )
        full = installation.predict(unique_name, b"echo", token)
        assert [h.result().status_code for h in holders] == [200] * 4
    # Both instances said 450 (queue full): the call was tried on each, then the caller was
    # told the service is overloaded and when to come back.
    assert full.status_code == 429, full.text
    assert full.headers["retry-after"] == "1"
    assert "2 instance(s) answered 450 (queue full)" in full.text
    failures = f'eas_gateway_upstream_failures_total{{reason="queue_full",service="{unique_name}"}}'
    retries = f'eas_gateway_upstream_retries_total{{reason="queue_full",service="{unique_name}"}}'
    assert gateway_metric(installation, failures) == 2
    assert gateway_metric(installation, retries) == 1


# -- authentication before the body, bounded buffers ---------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "wrong-token"}, {"authorization": "EAS bm90IGEgc2lnbmF0dXJl"}],
    ids=["none", "wrong", "bad-signature"],
)
def test_unauthenticated_upload_is_refused_before_its_body(
    installation: Installation, edge: tuple[str, str, int], headers: dict[str, str]
) -> None:
    name, _, _ = edge
    head = rawhttp.request("POST", f"/api/predict/{name}", headers)
    head = head.replace(b"content-length: 0", b"content-length: %d" % (64 * MiB))
    with rawhttp.connect(installation.gateway_port) as sock:
        sock.sendall(head)  # and no body at all
        assert rawhttp.has_answered(sock, wait=10), "no answer before the body was sent"
        answer = rawhttp.read_answer(sock)
        assert answer.status == 401
        assert answer.headers["connection"] == "close"


def test_signed_head_is_checked_before_the_body_and_the_body_after(
    installation: Installation, edge: tuple[str, str, int]
) -> None:
    name, token, _ = edge
    path = f"/api/predict/{name}"
    signed = sign(token, b"echo:the body", path)
    ok = installation.predict(name, b"echo:the body", headers=signed)
    assert ok.status_code == 200 and ok.content == b"echo:the body"
    # The signature covers the Content-MD5 header, and that header must describe the body.
    swapped = installation.predict(name, b"echo:other body", headers=signed)
    assert swapped.status_code == 401
    assert "Content-MD5" in swapped.text


def test_gateway_memory_stays_bounded_under_oversized_uploads(
    installation: Installation, edge: tuple[str, str, int]
) -> None:
    name, token, _ = edge
    gateway = psutil.Process(installation.pid("gateway"))
    baseline = gateway.memory_info().rss
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], gateway.memory_info().rss)
            time.sleep(0.02)

    def hostile(_: int) -> int:
        head = rawhttp.request("POST", f"/api/predict/{name}", {"authorization": "nope"})
        head = head.replace(b"content-length: 0", b"content-length: %d" % (64 * MiB))
        with rawhttp.connect(installation.gateway_port, timeout=60) as sock:
            rawhttp.send_until_answered(sock, head, 64 * MiB)
            return rawhttp.read_answer(sock).status

    def authenticated(_: int) -> httpx.Response:
        return installation.predict(name, b"size:" + b"x" * (8 * MiB - 5), token)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(10) as pool:
            assert list(pool.map(hostile, range(10))) == [401] * 10
            hostile_peak = peak[0]
            answers = list(pool.map(authenticated, range(10)))
    finally:
        stop.set()
        sampler.join()
    assert [(a.status_code, a.content) for a in answers] == [(200, b"%d" % (8 * MiB))] * 10
    # The buffers are given back once the calls are done; the report says how far, if not.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: gateway.memory_info().rss <= baseline + 48 * MiB, timeout=20)
    settled = gateway.memory_info().rss
    report = f"baseline {baseline / MiB:.0f} MiB, hostile peak {hostile_peak / MiB:.0f} MiB, "
    report += f"peak {peak[0] / MiB:.0f} MiB, settled {settled / MiB:.0f} MiB"
    print(report)
    # Unauthenticated bodies are never read; ten 8 MiB bodies are held once each, and then
    # given back.
    assert hostile_peak < baseline + 32 * MiB, report
    assert settled <= baseline + 48 * MiB, report
    assert peak[0] < baseline + 2 * 10 * 8 * MiB, report


# -- header and request-line limits --------------------------------------------------------------


@pytest.fixture(params=["gateway", "instance"])
def target(
    request: pytest.FixtureRequest, installation: Installation, edge: tuple[str, str, int]
) -> int:
    return installation.gateway_port if request.param == "gateway" else edge[2]


def test_huge_header_answers_431_while_other_callers_are_served(
    installation: Installation, edge: tuple[str, str, int], target: int
) -> None:
    name, token, _ = edge
    url = f"{installation.gateway_url}/api/predict/{name}"
    with SteadyLoad(url, token, b"ordinary", threads=2, max_seconds=60) as load:
        wait_for(lambda: len(load.result.answers) >= 10, what="the load to run")
        with rawhttp.connect(target, timeout=30) as sock:
            head = f"POST /api/predict/{name} HTTP/1.1\r\nhost: x\r\nx-big: ".encode()
            sent = rawhttp.send_until_answered(sock, head, 64 * MiB)
            try:
                answer = rawhttp.read_answer(sock)
            except OSError as exc:  # no answer at all
                answer = rawhttp.Answer(0, {}, repr(exc).encode())
        seen = len(load.result.answers)
        wait_for(lambda: len(load.result.answers) >= seen + 10, what="more calls after it")
    times = sorted(t for t, _, _ in load.result.answers)
    stall = max(b - a for a, b in pairwise(times))
    print(
        f"huge header: {len(times)} other calls, {len(load.result.failures)} failed, longest "
        f"wait between answers {stall:.2f} s, {sent / MiB:.1f} MiB of header sent"
    )
    # The header never ends, so an answer at all means it was refused partway through.
    assert answer.status == 431, answer
    assert b"header" in answer.body
    assert load.result.failures == []


def test_too_many_headers_answer_431(edge: tuple[str, str, int], target: int) -> None:
    name, token, _ = edge
    headers = {f"x-h{i}": "v" for i in range(200)} | {"authorization": token}
    with rawhttp.connect(target) as sock:
        sock.sendall(rawhttp.request("POST", f"/api/predict/{name}", headers, b"x"))
        answer = rawhttp.read_answer(sock)
    assert answer.status == 431 and b"header" in answer.body


def test_long_request_line_answers_414(edge: tuple[str, str, int], target: int) -> None:
    name, token, _ = edge
    path = f"/api/predict/{name}?q=" + "a" * (64 * 1024)
    with rawhttp.connect(target) as sock:
        sock.sendall(rawhttp.request("POST", path, {"authorization": token}, b"x"))
        answer = rawhttp.read_answer(sock)
    assert answer.status == 414 and b"URL" in answer.body


# -- a gateway crash refuses no connection --------------------------------------------------------


def test_gateway_sigkill_refuses_no_connection(
    installation: Installation, edge: tuple[str, str, int]
) -> None:
    name, token, _ = edge
    url = f"{installation.gateway_url}/api/predict/{name}"
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + 60

    def caller() -> None:
        # One keep-alive connection per caller; httpx opens a new one after it is closed.
        with httpx.Client(timeout=30) as client:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    status = client.post(url, content=b"x", headers={"Authorization": token})
                    outcome = "ok" if status.status_code == 200 else str(status.status_code)
                except httpx.ConnectError:
                    outcome = "refused"
                except httpx.HTTPError:
                    outcome = "lost in flight"
                with lock:
                    outcomes[outcome] += 1

    callers = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
    for thread in callers:
        thread.start()
    wait_for(lambda: outcomes["ok"] >= 50, what="the callers to run")
    old = installation.pid("gateway")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: installation.pid("gateway") != old, timeout=30, what="a new gateway")
    served = outcomes["ok"]
    wait_for(lambda: outcomes["ok"] >= served + 50, timeout=30, what="calls after the restart")
    stop.set()
    for thread in callers:
        thread.join(timeout=30)
    print(dict(outcomes))
    assert outcomes["refused"] == 0, dict(outcomes)
    # Only the calls in flight at the kill may be lost: one per caller at most.
    assert outcomes["lost in flight"] <= len(callers), dict(outcomes)
    assert set(outcomes) <= {"ok", "lost in flight"}, dict(outcomes)


# -- signed calls carry a fresh, readable Date -----------------------------------------------------


def signed_at(token: str, body: bytes, path: str, date: str) -> dict[str, str]:
    return sign(token, body, path, date=date)


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        (None, 401),  # not a date at all
        (timedelta(days=-2), 401),  # a captured call, replayed two days later
        (timedelta(hours=8), 200),  # the official SDK's local time (UTC+8) labelled GMT
        (timedelta(hours=-10), 200),
        (timedelta(0), 200),
    ],
    ids=["unparseable", "two-days-old", "local-utc+8", "local-utc-10", "now"],
)
def test_signed_call_date_must_parse_and_be_within_the_window(
    installation: Installation,
    edge: tuple[str, str, int],
    target: int,
    shift: timedelta | None,
    expected: int,
) -> None:
    name, token, _ = edge
    path = f"/api/predict/{name}"
    date = (
        "not a date at all"
        if shift is None
        else format_datetime(datetime.now(UTC) + shift, usegmt=True)
    )
    headers = signed_at(token, b"echo", path, date)
    answer = httpx.post(f"http://127.0.0.1:{target}{path}", content=b"echo", headers=headers)
    assert answer.status_code == expected, answer.text


# -- a processor's informational status does not hang its caller ---------------------------------


@pytest.mark.parametrize(("status", "body"), [(100, b"x"), (101, b"x"), (199, b"x"), (204, b"x")])
def test_processor_status_that_cannot_end_a_call_answers_500_naming_it(
    installation: Installation, edge: tuple[str, str, int], status: int, body: bytes
) -> None:
    name, token, _ = edge
    answer = httpx.post(
        f"{installation.gateway_url}/api/predict/{name}",
        content=b"status:%d:" % status + body,
        headers={"Authorization": token},
        timeout=10,
    )
    assert answer.status_code == 500
    assert str(status) in answer.text
    # The connection stays usable: the next call on it is answered.
    assert installation.predict(name, b"echo", token).status_code == 200
