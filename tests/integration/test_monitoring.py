"""Monitoring through a real installation: the controller scrapes instances and the gateway,
stores the series, and the control API, the SDK and `eascmd monitor --json` show them."""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from eas_core.errors import BadRequest, NotFound
from eas_core.spec.monitoring import ServiceMetrics
from eas_core.spec.routes import RouteTable
from tests.support.installation import (
    Installation,
    delete_services,
    free_port,
    python_service,
    start_installation,
    wait_for,
)
from tests.support.load import PacedResult, paced_load

# Collected every second here, so a short load gives many points.
INTERVAL = 1.0
RATE = 40.0
CALLS = 320
COOLDOWN = 6.0
WAKE_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("eas-mon") / "data"
    data_dir.mkdir()
    running = start_installation(
        data_dir,
        extra_env={
            "EAS_METRICS_INTERVAL": str(INTERVAL),
            "EAS_METRICS_COARSE_STEP": "5",
            "EAS_AUTOSCALE_COOLDOWN": str(COOLDOWN),
            "EAS_ALERT_BACKOFF_INITIAL": "0.2",
            "EAS_WAKE_TIMEOUT": str(WAKE_TIMEOUT),
        },
    )
    yield running
    running.stop()


def _steady_rate(data: ServiceMetrics, metric: str, start: float, end: float) -> float:
    """The median of the points whose whole step lies inside the load."""
    series = data.get(metric)
    assert series is not None, f"no {metric} series in {data.model_dump()}"
    inside = [v for t, v in series.points if start + INTERVAL + 0.5 <= t <= end - 0.2]
    assert len(inside) >= 3, f"too few {metric} points inside the load: {series.points}"
    return statistics.median(inside)


def test_request_rate_matches_what_the_load_generator_measured(
    monitored: Installation, tmp_path: Path
) -> None:
    name = "mon_rate"
    client = monitored.client
    try:
        client.create_service(python_service(name))
        client.wait_until_running(name, timeout=60)
        token = client.describe_service(name)["AccessToken"]
        url = f"{monitored.gateway_url}/api/predict/{name}"
        load = paced_load(url, token, b"echo:" + b"x" * 1000, rate=RATE, total=CALLS)
        assert load.statuses.count(200) == CALLS, load.statuses
        # Wait for the step that ends after the last call to be stored.
        wait_for(
            lambda: (
                (s := client.metrics(name, metrics=["rps"], since="2m").get("rps")) is not None
                and s.points[-1][0] > load.ended + INTERVAL
            ),
            timeout=20,
            what="the points after the load",
        )
        data = client.metrics(name, since="2m")
        measured = load.rate
        for metric in ("rps", "rps_2xx", "gateway_rps"):
            seen = _steady_rate(data, metric, load.started, load.ended)
            assert abs(seen - measured) <= 0.1 * measured, (metric, seen, measured)
        # Bodies of ~1 KB each way at 40/s: about 40 KB/s in and out.
        in_kbps = _steady_rate(data, "in_kbps", load.started, load.ended)
        assert abs(in_kbps - measured * 1005 / 1024) <= 0.1 * measured, in_kbps
        for metric in ("latency_p50_ms", "latency_p99_ms", "memory_mb", "cpu_cores"):
            series = data.get(metric)
            assert series is not None and series.points, metric
            assert max(v for _, v in series.points) > 0, (metric, series.points)
        instance = client.list_instances(name)[0]["InstanceName"]
        mine = client.metrics(name, metrics=["rps"], since="2m", instance=instance)
        assert [s.instance for s in mine.series] == [instance]
        assert _steady_rate_of(mine, instance, load.started, load.ended) == pytest.approx(
            measured, rel=0.1
        )

        printed = json.loads(monitored.eascmd("monitor", name, "--since", "2m", "--json").stdout)
        from_cli = ServiceMetrics.model_validate(printed)
        seen = _steady_rate(from_cli, "rps", load.started, load.ended)
        assert abs(seen - measured) <= 0.1 * measured, (seen, measured)
    finally:
        delete_services(client, name)


def _steady_rate_of(data: ServiceMetrics, instance: str, start: float, end: float) -> float:
    series = data.get("rps", instance)
    assert series is not None
    inside = [v for t, v in series.points if start + INTERVAL + 0.5 <= t <= end - 0.2]
    assert len(inside) >= 3, series.points
    return statistics.median(inside)


def test_queries_name_what_is_wrong(monitored: Installation) -> None:
    name = "mon_bad"
    client = monitored.client
    try:
        client.create_service(python_service(name))
        with pytest.raises(BadRequest, match="metric: 'qps' is not one of"):
            client.metrics(name, metrics=["qps"])
        with pytest.raises(BadRequest, match="since: '15 minutes'"):
            client.metrics(name, since="15 minutes")
        result = monitored.eascmd("monitor", "nope_service", "--json", check=False)
        assert result.returncode == 1
        assert "nope_service" in result.stderr
    finally:
        delete_services(client, name)


def test_points_are_averaged_into_the_coarse_tier(monitored: Installation) -> None:
    """Past the fine tier's retention a query reads the averaged points: with a 5 s coarse
    step, a query over more than an hour answers points 5 s apart."""
    name = "mon_coarse"
    client = monitored.client
    try:
        client.create_service(python_service(name))
        client.wait_until_running(name, timeout=60)
        start = time.time()

        def coarse() -> ServiceMetrics | None:
            data = client.metrics(name, metrics=["restarts"], since="2h")
            series = data.get("restarts")
            return data if series is not None and len(series.points) >= 2 else None

        data = wait_for(coarse, timeout=30, what="two coarse points")
        assert data.step == 5
        series = data.get("restarts")
        assert series is not None
        times = [t for t, _ in series.points]
        assert all(t % 5 == 0 for t in times), times
        assert times[-1] - times[-2] == 5
        assert times[-1] >= start
    finally:
        delete_services(client, name)


def test_autoscaling_follows_a_load_ramp_up_and_back_down_without_a_failed_call(
    monitored: Installation,
) -> None:
    name = "mon_scale"
    client = monitored.client
    try:
        client.create_service(python_service(name))
        client.wait_until_running(name, timeout=60)
        token = client.describe_service(name)["AccessToken"]
        url = f"{monitored.gateway_url}/api/predict/{name}"
        shown = monitored.eascmd_json("autoscale", name, "--min", "1", "--max", "3", "--qps", "15")
        assert shown["Rule"] == {"Min": 1, "Max": 3, "Metric": "qps", "Target": 15.0}

        # 40 requests/s need 3 instances of 15 each: up at once.
        heavy = paced_load(url, token, b"echo:up", rate=RATE, total=400)
        wait_for(
            lambda: client.describe_service(name)["TotalInstance"] == 3,
            timeout=30,
            what="3 instances",
        )
        peak = len(client.list_instances(name))

        # A light load (4/s, 1 instance's worth) while it scales back down after the cool-down.
        results: list[PacedResult] = []
        light = threading.Thread(
            target=lambda: results.append(
                paced_load(url, token, b"echo:down", rate=4, total=120, threads=2)
            )
        )
        light.start()
        wait_for(
            lambda: [i["Status"] for i in client.list_instances(name)] == ["Running"],
            timeout=COOLDOWN + 40,
            what="one instance again",
        )
        light.join(timeout=60)
        assert peak >= 2
        assert heavy.statuses.count(200) == len(heavy.statuses), heavy.statuses
        assert results and results[0].statuses == [200] * len(results[0].statuses)

        found = [e.message for e in client.events(name) if e.kind == "Autoscale"]
        steps = [
            (int(m.split()[2]), int(m.split()[4].rstrip(":")), m)
            for m in found
            if m.startswith("scaled from ")
        ]
        assert steps[0][:2] in ((1, 3), (1, 2)), found
        assert max(to for _, to, _ in steps) == 3, found
        assert steps[-1][1] == 1, found
        downs = [m for before, to, m in steps if to < before]
        assert downs and all("over the last 6 s" in m for m in downs), found
        table = monitored.eascmd("events", name).stdout
        assert "scaled from" in table and "to 1:" in table

        # While the rule holds, a manual count would be undone at the next decision: refused.
        manual = monitored.eascmd("modify", name, "-Dmetadata.instance=2", check=False)
        assert manual.returncode == 1, manual.stderr
        assert "metadata.instance: autoscaling keeps mon_scale between 1 and 3" in manual.stderr

        off = monitored.eascmd_json("autoscale", name, "--off")
        assert off["Rule"] is None
        assert monitored.eascmd_json("autoscale", name)["Rule"] is None
        monitored.eascmd("modify", name, "-Dmetadata.instance=2")
        assert client.describe_service(name)["TotalInstance"] == 2
        refused = monitored.eascmd(
            "autoscale", name, "--min", "3", "--max", "1", "--qps", "5", check=False
        )
        assert refused.returncode == 1 and "Max: 1 is below Min (3)" in refused.stderr
    finally:
        delete_services(client, name)


class Webhook:
    """A loopback server that records each POSTed alert; it answers the first one 500, so
    the controller has to try again."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers = 0
        received, hook = self.received, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                hook.answers += 1
                status = 500 if hook.answers == 1 else 200
                if status == 200:
                    received.append(json.loads(body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def statuses(self) -> list[str]:
        return [a["Status"] for a in self.received]


def test_an_alert_on_the_5xx_share_fires_once_and_resolves(
    monitored: Installation, tmp_path: Path
) -> None:
    name = "mon_alert"
    client = monitored.client
    try:
        client.create_service(python_service(name))
        client.wait_until_running(name, timeout=60)
        token = client.describe_service(name)["AccessToken"]
        url = f"{monitored.gateway_url}/api/predict/{name}"
        with Webhook() as hook:
            rule = {
                "Name": "mon_alert_errors",
                "Services": [name],
                "Metric": "share_5xx",
                "Condition": ">",
                "Threshold": 50,
                "Window": 3,
                "Silence": 3600,
                "Level": "critical",
                "CallbackUrl": f"http://127.0.0.1:{hook.port}/hook",
            }
            bad = tmp_path / "bad.json"
            bad.write_text(json.dumps({k: v for k, v in rule.items() if k != "Threshold"}))
            refused = monitored.eascmd("alert", "create", str(bad), check=False)
            assert refused.returncode == 1 and "Threshold" in refused.stderr, refused.stderr
            # A rule may not make the controller call its own control API.
            own = urlsplit(monitored.controller_url).port
            bad.write_text(json.dumps({**rule, "CallbackUrl": f"http://127.0.0.1:{own}/api"}))
            refused = monitored.eascmd("alert", "create", str(bad), check=False)
            assert refused.returncode == 1, refused.stderr
            assert "CallbackUrl: " in refused.stderr and "own control API" in refused.stderr
            good = tmp_path / "alert.json"
            good.write_text(json.dumps(rule))
            monitored.eascmd("alert", "create", str(good))
            assert "mon_alert_errors" in monitored.eascmd("alert", "ls").stdout

            # 8 s of failures: it fires once, and the silence period keeps it from repeating.
            failing = paced_load(url, token, b"status:500", rate=20, total=160)
            assert set(failing.statuses) == {500}
            wait_for(lambda: "firing" in hook.statuses(), timeout=20, what="the firing alert")
            assert hook.statuses() == ["firing"]
            fired = hook.received[0]
            assert fired["ServiceName"] == name and fired["Level"] == "critical"
            assert fired["Value"] > 50

            healthy = paced_load(url, token, b"echo:ok", rate=20, total=120)
            assert set(healthy.statuses) == {200}
            wait_for(lambda: "resolved" in hook.statuses(), timeout=20, what="the resolution")
            assert hook.statuses() == ["firing", "resolved"]

            details = monitored.eascmd_json("alert", "desc", "mon_alert_errors")
            assert [s["Status"] for s in details["States"]] == ["resolved"]
            deliveries = [
                (d["Status"], d["Attempts"], d["Delivered"]) for d in details["Deliveries"]
            ]
            assert deliveries == [("firing", 2, True), ("resolved", 1, True)]
            kinds = [e.message for e in client.events(name) if e.kind == "Alert"]
            assert kinds[0].startswith("alert mon_alert_errors (critical) firing: share_5xx")
            assert kinds[1].startswith("alert mon_alert_errors (critical) resolved")
            monitored.eascmd("alert", "delete", "mon_alert_errors")
            assert monitored.eascmd_json("alert", "ls") == []
    finally:
        delete_services(client, name)
        with contextlib.suppress(NotFound):
            client.delete_alert("mon_alert_errors")


def test_a_service_scaled_to_zero_is_woken_by_a_call(monitored: Installation) -> None:
    name = "mon_zero"
    client = monitored.client
    try:
        client.create_service(python_service(name))
        client.wait_until_running(name, timeout=60)
        token = client.describe_service(name)["AccessToken"]
        monitored.eascmd("autoscale", name, "--min", "0", "--max", "2", "--qps", "15")
        # Idle past the cool-down: no instance left.
        wait_for(
            lambda: (
                client.describe_service(name)["TotalInstance"] == 0
                and client.list_instances(name) == []
            ),
            timeout=COOLDOWN + 40,
            what="the service to scale to zero",
        )
        # The call is held while an instance starts, then answered.
        answer = monitored.predict(name, b"echo:woken", token)
        assert answer.status_code == 200, answer.text
        assert answer.content == b"woken"
        assert len(client.list_instances(name)) == 1
        found = [e.message for e in client.events(name) if e.kind == "Autoscale"]
        assert any(m.startswith("scaled from 1 to 0: ") for m in found), found
        assert "scaled from 0 to 1: a call arrived while it had no instance" in found, found
    finally:
        delete_services(client, name)


def test_a_call_held_for_an_instance_that_never_gets_ready_is_answered_503(
    monitored: Installation, tmp_path: Path
) -> None:
    name = "mon_zero_bad"
    client = monitored.client
    model = tmp_path / "model.txt"
    model.write_text("fail-initialize")
    try:
        client.create_service(python_service(name, model_path=str(model), metadata={"instance": 0}))
        token = client.describe_service(name)["AccessToken"]
        monitored.eascmd("autoscale", name, "--min", "0", "--max", "2", "--qps", "15")
        wait_for(
            lambda: _gateway_wakes(monitored, name),
            timeout=30,
            what="the gateway's route table to hold calls for the service",
        )
        started = time.monotonic()
        answer = monitored.predict(name, b"echo:never", token)
        waited = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"
        assert f"no ready instance within {WAKE_TIMEOUT:g} s of starting from zero" in answer.text
        assert waited >= WAKE_TIMEOUT - 1
        assert client.describe_service(name)["TotalInstance"] == 1  # it was asked for one
    finally:
        delete_services(client, name)


def _gateway_wakes(installation: Installation, name: str) -> bool:
    """Whether the route table the gateway serves from marks NAME as woken by a call."""
    persisted = installation.data_dir / "gateway" / "routes.json"
    if not persisted.exists():
        return False
    table = RouteTable.model_validate_json(persisted.read_bytes())
    route = table.services.get(name)
    return route is not None and route.wakes
