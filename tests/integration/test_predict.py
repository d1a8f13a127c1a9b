"""Calling services: gateway (plain and signed tokens), direct, and every platform status."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from eas_core.auth.tokens import sign
from tests.support.installation import (
    Installation,
    delete_services,
    metric,
    python_service,
    wait_for,
)


@pytest.fixture(scope="module")
def probe(installation: Installation) -> Iterator[dict[str, str]]:
    """One running probe service shared by this module's tests: name and token."""
    installation.client.create_service(python_service("predict_probe", instances=2))
    try:
        installation.client.wait_until_running("predict_probe", timeout=60)
        yield {
            "name": "predict_probe",
            "token": installation.client.describe_service("predict_probe").access_token,
        }
    finally:
        delete_services(installation.client, "predict_probe")


def test_plain_token_answers_through_gateway(
    installation: Installation, probe: dict[str, str]
) -> None:
    answer = installation.predict(probe["name"], b"echo:hello", probe["token"])
    assert answer.status_code == 200
    assert answer.content == b"hello"


def test_signed_request_as_the_official_sdk_sends_it(
    installation: Installation, probe: dict[str, str]
) -> None:
    body = b"echo:signed"
    headers = sign(probe["token"], body, f"/api/predict/{probe['name']}")
    answer = installation.predict(probe["name"], body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.content == b"signed"


def test_signature_over_another_body_is_refused(
    installation: Installation, probe: dict[str, str]
) -> None:
    headers = sign(probe["token"], b"echo:one", f"/api/predict/{probe['name']}")
    answer = installation.predict(probe["name"], b"echo:two", headers=headers)
    assert answer.status_code == 401


@pytest.mark.parametrize("token", [None, "wrong-token", "EAS bm90IGEgc2lnbmF0dXJl"])
def test_missing_or_wrong_token_answers_401(
    installation: Installation, probe: dict[str, str], token: str | None
) -> None:
    assert installation.predict(probe["name"], b"echo:x", token).status_code == 401


def test_unknown_service_answers_404(installation: Installation) -> None:
    assert installation.predict("no_such_service", b"x", "t").status_code == 404


def test_subpath_and_query_reach_the_processor(
    installation: Installation, probe: dict[str, str]
) -> None:
    answer = installation.predict(probe["name"], b"echo:sub", probe["token"], path="/v1/things?x=1")
    assert answer.status_code == 200
    assert answer.content == b"sub"


def test_processor_status_and_exception(installation: Installation, probe: dict[str, str]) -> None:
    assert installation.predict(probe["name"], b"status:418", probe["token"]).status_code == 418
    raised = installation.predict(probe["name"], b"raise", probe["token"])
    assert raised.status_code == 400
    assert b"the processor was asked to raise" in raised.content
    # The instance survived the exception.
    assert installation.predict(probe["name"], b"echo:after", probe["token"]).content == b"after"
    workers = installation.client.list_instances(probe["name"])
    assert all(w.restarts == 0 for w in workers)


def test_oversize_body_answers_413(installation: Installation, probe: dict[str, str]) -> None:
    body = b"x" * (64 * 1024 * 1024 + 1)
    answer = installation.predict(probe["name"], body, probe["token"])
    assert answer.status_code == 413


def test_malformed_http_answers_400_and_closes(installation: Installation) -> None:
    with socket.create_connection(("127.0.0.1", installation.gateway_port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 400")
        assert sock.recv(4096) == b""  # closed


def test_direct_connection_through_service_discovery(
    installation: Installation, probe: dict[str, str]
) -> None:
    for path in (
        "/api/v1/servicediscovery/upstreams/",
        "/exported/apis/eas.alibaba-inc.k8s.io/v1/upstreams/",
    ):
        document = httpx.get(f"{installation.gateway_url}{path}{probe['name']}").json()
        items = document["endpoints"]["items"]
        assert len(items) == 2
        assert document["correlative"] == [probe["name"]]
    for item in items:
        url = f"http://{item['ip']}:{item['port']}/api/predict/{probe['name']}"
        body = b"echo:direct"
        signed = httpx.post(
            url, content=body, headers=sign(probe["token"], body, f"/api/predict/{probe['name']}")
        )
        assert signed.status_code == 200 and signed.content == b"direct"
        plain = httpx.post(url, content=body, headers={"Authorization": probe["token"]})
        assert plain.status_code == 200
        assert httpx.post(url, content=body, headers={"Authorization": "nope"}).status_code == 401


def test_worker_processes_share_the_load(installation: Installation, unique_name: str) -> None:
    installation.client.create_service(python_service(unique_name, "app_multi.py"))
    installation.client.wait_until_running(unique_name, timeout=60)
    token = installation.client.describe_service(unique_name).access_token
    # Concurrent calls make the gateway open several connections, spread over the workers.
    # (The service is ready once one worker listens; the others may still be loading.)
    pids: set[str] = set()
    for _ in range(5):
        with ThreadPoolExecutor(12) as pool:
            answers = list(
                pool.map(
                    lambda _: installation.predict(unique_name, b"pid_after:100", token), range(36)
                )
            )
        assert all(a.status_code == 200 for a in answers)
        pids |= {a.text for a in answers}
        if len(pids) >= 2:
            break
    assert len(pids) >= 2, pids


def test_deadline_answers_408(installation: Installation, unique_name: str) -> None:
    installation.client.create_service(python_service(unique_name, metadata={"rpc.keepalive": 300}))
    installation.client.wait_until_running(unique_name, timeout=60)
    token = installation.client.describe_service(unique_name).access_token
    assert installation.predict(unique_name, b"sleep:1500", token).status_code == 408
    assert installation.predict(unique_name, b"echo:fast", token).status_code == 200


def test_full_queue_answers_450(installation: Installation, unique_name: str) -> None:
    document = python_service(
        unique_name, metadata={"rpc.max_queue_size": 1, "rpc.worker_threads": 1}
    )
    installation.client.create_service(document)
    installation.client.wait_until_running(unique_name, timeout=60)
    port = installation.client.list_instances(unique_name)[0].port
    token = installation.client.describe_service(unique_name).access_token
    request = (
        f"POST /api/predict/{unique_name} HTTP/1.1\r\nhost: x\r\nauthorization: {token}\r\n"
        "content-length: 10\r\n\r\nsleep:1500"
    ).encode()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        for s in socks:
            s.sendall(request)
        # Two fit (one worker + one queued); the third is refused at once and closed.
        third = socks[2].recv(4096)
        assert third.startswith(b"HTTP/1.1 450"), third
        assert socks[2].recv(4096) == b""
        assert socks[0].recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()


def test_open_service_needs_no_token(installation: Installation, unique_name: str) -> None:
    installation.client.create_service(python_service(unique_name, generate_token="false"))
    installation.client.wait_until_running(unique_name, timeout=60)
    assert installation.client.describe_service(unique_name).access_token == ""
    assert installation.predict(unique_name, b"echo:open").content == b"open"


def test_stopped_service_answers_503_and_starts_again(
    installation: Installation, unique_name: str
) -> None:
    installation.client.create_service(python_service(unique_name, token="fixed-token-123"))
    installation.client.wait_until_running(unique_name, timeout=60)
    installation.eascmd("stop", unique_name)
    wait_for(
        lambda: installation.predict(unique_name, b"echo:x", "fixed-token-123").status_code == 503,
        what="503 after stop",
    )
    assert installation.eascmd_json("desc", unique_name)["Status"] == "Stopped"
    installation.eascmd("start", unique_name)
    assert installation.predict(unique_name, b"echo:back", "fixed-token-123").content == b"back"
    installation.eascmd("delete", unique_name, "-y")
    assert installation.predict(unique_name, b"echo:x", "fixed-token-123").status_code == 404


def test_metrics_are_prometheus_text(installation: Installation, probe: dict[str, str]) -> None:
    instances = installation.client.list_instances(probe["name"])
    urls = [f"http://127.0.0.1:{i.port}/api/builtin/metrics" for i in instances]
    gateway_url = f"{installation.gateway_url}/api/builtin/metrics"
    service = {"service": probe["name"]}

    def answered() -> tuple[float, float]:
        instances = sum(metric(url, "eas_requests_total", **service) for url in urls)
        return instances, metric(gateway_url, "eas_gateway_requests_total", **service)

    before = answered()
    assert installation.predict(probe["name"], b"echo:m", probe["token"]).status_code == 200
    # The call is counted once by the instance that answered it, and once by the gateway.
    assert answered() == (before[0] + 1, before[1] + 1)
    assert all(httpx.get(url.replace("metrics", "ping")).text == "pong" for url in urls)


def test_discovery_of_an_unknown_service_answers_404_naming_it(
    installation: Installation,
) -> None:
    answer = httpx.get(f"{installation.gateway_url}/api/v1/servicediscovery/upstreams/nope")
    assert answer.status_code == 404
    assert "'nope'" in answer.text
