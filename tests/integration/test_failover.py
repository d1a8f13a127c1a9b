"""Two controllers on one PostgreSQL store: one leads, the other waits as a standby and
takes over when the leader is killed — services, versions and tokens intact, the running
instances adopted rather than restarted, and the gateway serving throughout. And two
gateways: the SDK, given both, moves to the other when one is killed."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eas_core.controller.store import Repository
from eas_core.controller.store.lease import LeaderLease
from eas_core.sdk.predict import PredictClient, PredictException, StringRequest
from tests.support.installation import python_service, start_installation, wait_for
from tests.support.load import SteadyLoad
from tests.support.parts import parts
from tests.support.postgres import Cluster, postgres_cluster


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    with postgres_cluster() as cluster:
        yield cluster


def role(url: str) -> str:
    answer: str = httpx.get(f"{url}/api/v1/health", timeout=2).json()["role"]
    return answer


def test_the_standby_controller_takes_over_when_the_leader_is_killed(
    postgres: Cluster, tmp_path: Path
) -> None:
    installation = parts(tmp_path / "data", postgres.new_database(), controllers=2, gateways=1)
    try:
        leader = installation.controller(0)
        standby = installation.controller(1)
        assert (role(leader.url), role(standby.url)) == ("leader", "standby")
        gateway = installation.gateway(0)

        # The standby does nothing and says where the leader is; a balancer's probe tells them
        # apart by status alone.
        refused = httpx.get(f"{standby.url}/api/v2/services", timeout=2)
        assert refused.status_code == 503
        assert leader.url in refused.json()["message"]
        assert httpx.get(f"{leader.url}/api/v1/leader", timeout=2).status_code == 200
        assert httpx.get(f"{standby.url}/api/v1/leader", timeout=2).status_code == 503

        client = installation.client(leader)
        client.create_service(python_service("ha", instances=2))
        client.wait_until_running("ha", timeout=90)
        token = client.describe_service("ha")["AccessToken"]
        instances = {(i.instance_name, i.start_time) for i in client.list_instances("ha")}
        client.close()

        url = f"{gateway.url}/api/predict/ha"
        with SteadyLoad(url, token, b"echo:up", threads=2, max_seconds=120) as load:
            load.next_calls(20)
            killed_at = time.monotonic()
            leader.process.kill()  # SIGKILL: no shutdown, the lease connection just ends
            leader.process.wait()
            wait_for(
                lambda: httpx.get(f"{standby.url}/api/v1/leader", timeout=1).status_code == 200,
                timeout=60,
                interval=0.05,
                what="the standby to take the leader lease",
            )
            take_over = time.monotonic() - killed_at
            load.next_calls(20)

            client = installation.client(standby)
            assert role(standby.url) == "leader"
            assert client.describe_service("ha")["AccessToken"] == token
            assert [v.version for v in client.list_versions("ha")] == [1]
            # Adopted, not restarted: the same instances, started when they were.
            adopted = {(i.instance_name, i.start_time) for i in client.list_instances("ha")}
            assert adopted == instances

            # The new leader acts: a change goes through it and reaches the gateway.
            client.modify_service("ha", {"metadata": {"instance": 3}})
            client.wait_until_running("ha", timeout=90)
            wait_for(
                lambda: len(client.list_instances("ha")) == 3,
                timeout=60,
                what="the third instance",
            )
            load.next_calls(20)
        client.delete_service("ha")
        client.close()
        answers = load.result.answers
        failures = [a for a in answers if a[1] != 200]
        print(
            f"take-over {take_over:.2f}s after SIGKILL; {len(answers)} calls through the "
            f"gateway, {len(failures)} failed"
        )
        assert failures == []
    finally:
        installation.stop()


def sdk_load(
    client: PredictClient, stop: threading.Event, counts: Counter[str], max_calls: int
) -> None:
    for _ in range(max_calls):
        if stop.is_set():
            return
        try:
            answer = client.predict(StringRequest(b"echo:sdk")).response_data
            counts["ok" if answer == b"sdk" else f"wrong {answer!r}"] += 1
        except PredictException as exc:
            counts[f"failed {exc}"] += 1


def test_the_sdk_moves_to_the_next_gateway_when_one_is_killed(
    postgres: Cluster, tmp_path: Path
) -> None:
    installation = parts(tmp_path / "data", postgres.new_database(), controllers=1, gateways=2)
    try:
        controller = installation.controller(0)
        first, second = installation.gateway(0), installation.gateway(1)
        client = installation.client(controller)
        client.create_service(python_service("ha2"))
        client.wait_until_running("ha2", timeout=90)
        token = client.describe_service("ha2")["AccessToken"]
        client.close()
        # Each gateway has the route table and serves the service on its own.
        for gateway in (first, second):
            answer = httpx.post(
                f"{gateway.url}/api/predict/ha2",
                content=b"echo:each",
                headers={"Authorization": token},
                timeout=10,
            )
            assert (answer.status_code, answer.content) == (200, b"each")

        sdk = PredictClient(f"127.0.0.1:{first.port},127.0.0.1:{second.port}", "ha2")
        sdk.set_token(token)
        sdk.init()
        counts: Counter[str] = Counter()
        stop = threading.Event()
        callers = [
            threading.Thread(target=sdk_load, args=(sdk, stop, counts, 3000)) for _ in range(2)
        ]
        for caller in callers:
            caller.start()
        try:
            wait_for(lambda: counts["ok"] >= 50, timeout=60, what="calls through the first gateway")
            first.process.kill()
            first.process.wait()
            at_kill = counts["ok"]
            wait_for(lambda: counts["ok"] >= at_kill + 200, timeout=60, what="calls after the kill")
        finally:
            stop.set()
            for caller in callers:
                caller.join(timeout=60)
            sdk.destroy()
        print(f"SDK calls over two gateways, one SIGKILLed after {at_kill}: {dict(counts)}")
        assert set(counts) == {"ok"}
    finally:
        installation.stop()


def test_eascmd_server_runs_several_gateways_each_serving_every_service(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    running = start_installation(data_dir, extra_args=["--gateways", "2"])
    try:
        running.client.create_service(python_service("ha3"))
        running.client.wait_until_running("ha3", timeout=90)
        token = running.client.describe_service("ha3")["AccessToken"]
        second = f"http://127.0.0.1:{running.gateway_port + 1}"
        for gateway in (running.gateway_url, second):
            answer = wait_for(
                lambda gateway=gateway: httpx.post(
                    f"{gateway}/api/predict/ha3",
                    content=b"echo:both",
                    headers={"Authorization": token},
                    timeout=10,
                ),
                timeout=30,
                what=f"{gateway} to serve ha3",
            )
            assert (answer.status_code, answer.content) == (200, b"both")
        # The second gateway is supervised like the first: killed, it is started again.
        killed = running.pid("gateway-2")
        os.kill(killed, signal.SIGKILL)
        wait_for(
            lambda: (
                running.pid("gateway-2") != killed
                and httpx.get(f"{second}/api/builtin/ready", timeout=1).status_code == 200
            ),
            timeout=60,
            what="the second gateway to be started again",
        )
        running.client.delete_service("ha3")
    finally:
        running.stop()


def test_the_leader_lease_is_held_by_one_connection_at_a_time(postgres: Cluster) -> None:
    store = postgres.new_database()
    Repository(store).close()  # the schema, where the leader's address is announced
    first = LeaderLease(store, "http://first:8000")
    second = LeaderLease(store, "http://second:8000")
    try:
        assert first.try_acquire()
        first.announce()
        assert not second.try_acquire()
        assert second.leader() == "http://first:8000"
        assert first.alive()
        first.release()  # as a killed leader's connection ending does
        assert second.try_acquire()
        second.announce()
        assert first.leader() == "http://second:8000"
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


def test_a_sqlite_store_has_one_controller_which_simply_holds_the_lease(tmp_path: Path) -> None:
    lease = LeaderLease(f"sqlite:///{tmp_path / 'eas.db'}", "http://only:8000")
    assert lease.try_acquire() and lease.alive() and not lease.shared
