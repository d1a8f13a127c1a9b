"""Connection limits and timeouts of the gateway and of an instance, through real processes.

An installation of its own with short timeouts and small caps (what an operator sets with
``EAS_*`` variables), and an instance process run by hand with the same settings: both
serve through the same HTTP kit, so every case runs against each.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import rawhttp
from tests.support.installation import (
    PROCESSORS,
    REPO,
    free_port,
    metric_in,
    python_service,
    start_installation,
    wait_for,
)

MiB = 1024 * 1024
LIMITS = {
    "EAS_IDLE_TIMEOUT": "1",
    "EAS_HEADER_TIMEOUT": "1",
    "EAS_BODY_TIMEOUT": "1",
    "EAS_MAX_CONNECTIONS": "40",
    "EAS_MAX_BUFFERED_BYTES": str(16 * MiB),
}


@dataclass
class Target:
    port: int
    path: str
    token: str
    instance_port: int  # the instance process that runs the calls (the target itself, or behind)

    def holds(self, count: int) -> bool:
        """Has the instance admitted ``count`` calls it has not finished (eas_queue_length)?
        Also true when the instance is the target and at its connection cap refuses even
        this look: every holder connected before it, so every holder was accepted."""
        url = f"http://127.0.0.1:{self.instance_port}/api/builtin/metrics"
        answer = httpx.get(url, timeout=10)
        if answer.status_code == 503 and self.instance_port == self.port:
            return "connections" in answer.text
        return metric_in(answer.text, "eas_queue_length") >= count


@pytest.fixture(scope="module")
def limited_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data_dir = tmp_path_factory.mktemp("limited") / "data"
    data_dir.mkdir()
    installation = start_installation(data_dir, extra_env=LIMITS)
    try:
        name = "limited_edge"
        document = python_service(
            name,
            processor_path=str(PROCESSORS / "edge"),
            metadata={"rpc.max_queue_size": 128, "rpc.worker_threads": 48},
        )
        installation.client.create_service(document)
        installation.client.wait_until_running(name, timeout=90)
        token = installation.client.describe_service(name).access_token
        port = int(installation.client.list_instances(name)[0].port)
        yield Target(installation.gateway_port, f"/api/predict/{name}", token, port)
    finally:
        installation.stop()


@pytest.fixture(scope="module")
def limited_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The edge processor run by hand (``python app.py``), as an instance serves."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
    env.update(LIMITS, EAS_HOST="127.0.0.1", EAS_PORT=str(port), EAS_MAX_QUEUE_SIZE="128")
    env["EAS_WORKER_THREADS"] = "48"  # the holders of the cap test all in the processor
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log = tmp_path_factory.mktemp("instance") / "instance.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=PROCESSORS / "edge",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/api/builtin/ready").status_code == 200,
            what="the instance to be ready",
        )
        yield Target(port, "/api/predict/default", "", port)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(Path(log).read_text()[-2000:])


@pytest.fixture(params=["gateway", "instance"])
def target(request: pytest.FixtureRequest) -> Target:
    return request.getfixturevalue(f"limited_{request.param}")


def auth(target: Target) -> dict[str, str]:
    return {"authorization": target.token} if target.token else {}


def test_idle_connections_are_closed(target: Target) -> None:
    fresh = [rawhttp.connect(target.port) for _ in range(20)]
    used = rawhttp.connect(target.port)
    used.sendall(rawhttp.request("POST", target.path, auth(target), b"echo"))
    assert rawhttp.read_answer(used).status == 200
    try:
        for sock in [*fresh, used]:
            assert rawhttp.closed_by_server(sock, within=15), "an idle connection stayed open"
    finally:
        for sock in [*fresh, used]:
            sock.close()


def test_slow_request_head_answers_408(target: Target) -> None:
    with rawhttp.connect(target.port) as sock:
        sock.sendall(f"POST {target.path} HTTP/1.1\r\nhost: x\r\n".encode())
        deadline = time.monotonic() + 15
        # A byte now and then, as a slowloris client keeps a connection from idling out.
        while not rawhttp.has_answered(sock, wait=0.2) and time.monotonic() < deadline:
            sock.sendall(b"x-slow: 1\r\n")
        answer = rawhttp.read_answer(sock)
        assert answer.status == 408 and b"header" in answer.body
        assert rawhttp.closed_by_server(sock, within=10)


def test_stalled_body_answers_408(target: Target) -> None:
    with rawhttp.connect(target.port) as sock:
        head = rawhttp.request("POST", target.path, auth(target), b"0123456789")
        sock.sendall(head.replace(b"content-length: 10", b"content-length: 100"))
        assert rawhttp.has_answered(sock, wait=15), "a stalled body was waited for forever"
        answer = rawhttp.read_answer(sock)
        assert answer.status == 408 and b"body" in answer.body
        assert rawhttp.closed_by_server(sock, within=10)


def test_connections_over_the_cap_answer_503(target: Target) -> None:
    """40 callers each waiting for an answer fill the cap; the next connection is told so."""
    holders = [rawhttp.connect(target.port, timeout=30) for _ in range(40)]
    try:
        for sock in holders:
            sock.sendall(rawhttp.request("POST", target.path, auth(target), b"hold:2000:"))
        # Every holder is accepted and its call in the processor (one of the gateway's may
        # have been refused meanwhile: see below).
        wait_for(lambda: target.holds(39), what="the holders' calls to arrive")
        with rawhttp.connect(target.port) as extra:
            extra.sendall(rawhttp.request("POST", target.path, auth(target), b"echo"))
            answer = rawhttp.read_answer(extra)
        assert answer.status == 503, answer
        assert b"connection" in answer.body and b"40" in answer.body
        statuses = [rawhttp.read_answer(sock).status for sock in holders]
        # (The controller's route push may take one of the gateway's places for a moment.)
        assert statuses.count(200) >= 39, statuses
    finally:
        for sock in holders:
            sock.close()
    # Once they are answered the holders sit idle: a new caller takes the place of one.
    with rawhttp.connect(target.port) as sock:
        sock.sendall(rawhttp.request("POST", target.path, auth(target), b"echo"))
        assert rawhttp.read_answer(sock).status == 200


def test_bodies_over_the_process_total_answer_503(target: Target) -> None:
    """16 MiB of request bodies may be held at once: two 6 MiB calls fit, a third does not."""
    url = f"http://127.0.0.1:{target.port}{target.path}"
    body = b"hold:2000:" + b"x" * (6 * MiB)

    def call(content: bytes) -> httpx.Response:
        return httpx.post(url, content=content, headers=auth(target), timeout=30)

    with ThreadPoolExecutor(2) as pool:
        holders = [pool.submit(call, body) for _ in range(2)]
        wait_for(  # both bodies are buffered and their calls in the processor
            lambda: target.holds(2), what="both holders' calls to arrive"
        )
        refused = call(b"size:" + b"x" * (6 * MiB))
        assert [h.result().status_code for h in holders] == [200, 200]
    assert refused.status_code == 503, refused.text
    assert "max_buffered_bytes" in refused.text
    assert refused.headers.get("retry-after") == "1"
    # The holders' bytes were given back: the same call fits now.
    assert call(b"size:" + b"x" * (6 * MiB)).status_code == 200


def test_fresh_connection_is_accepted_while_at_cap_of_idle_ones(target: Target) -> None:
    """Idle keep-alive connections make room for a new caller instead of refusing it."""
    idle = [socket.create_connection(("127.0.0.1", target.port)) for _ in range(40)]
    try:
        with rawhttp.connect(target.port) as sock:
            sock.sendall(rawhttp.request("POST", target.path, auth(target), b"echo"))
            assert rawhttp.read_answer(sock).status == 200
    finally:
        for sock in idle:
            sock.close()
