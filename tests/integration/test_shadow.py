"""Shadow traffic through a real installation: the gateway copies a share of a service's
calls to a candidate once it has answered, callers only ever get the live answers, a hung
candidate does not hold callers up, and copies over the gateway's bounds are dropped and
counted. Caller latencies with and without mirroring are printed, never asserted."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.installation import (
    PROCESSORS,
    Installation,
    metric_in,
    start_installation,
    wait_for,
)

# This module's installation: small mirror bounds, so a hung candidate fills them quickly.
MAX_IN_FLIGHT = 4
SHADOW_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("eas-shadow") / "data"
    data_dir.mkdir()
    running = start_installation(
        data_dir,
        extra_env={
            "EAS_SHADOW_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
            "EAS_SHADOW_TIMEOUT": str(SHADOW_TIMEOUT),
        },
    )
    yield running
    running.stop()


def linear(name: str, workdir: Path, model: dict[str, Any]) -> dict[str, Any]:
    path = workdir / f"model-{model['name']}.json"
    path.write_text(json.dumps(model))
    return {
        "name": name,
        "processor_type": "python",
        "processor_path": str(PROCESSORS / "linear"),
        "processor_entry": "app.py",
        "model_path": str(path),
        "metadata": {"instance": 1, "cpu": 0.1, "memory": 128},
    }


def deploy_pair(
    installation: Installation, name: str, workdir: Path, candidate: dict[str, Any]
) -> tuple[str, str]:
    """The live service (model ``live``, y = x) and a related candidate; (token, candidate)."""
    client = installation.client
    client.create_service(linear(name, workdir, {"name": "live", "scale": 1.0}))
    made = client.create_service(linear(name, workdir, candidate), related=True)
    cand = made.service_name
    token = client.wait_until_running(name, timeout=120).access_token
    client.wait_until_running(cand, timeout=120)
    return token, cand


def call_all(
    installation: Installation, name: str, token: str, count: int
) -> tuple[list[float], list[tuple[float, int, dict[str, Any]]]]:
    """``count`` sequential calls with distinct bodies: caller latencies (s) and answers."""
    url = f"{installation.gateway_url}/api/predict/{name}"
    latencies, answers = [], []
    with httpx.Client(headers={"Authorization": token}, timeout=30) as http:
        for i in range(count):
            x = float(i + 1)
            started = time.perf_counter()
            answer = http.post(url, content=str(x))
            latencies.append(time.perf_counter() - started)
            answers.append((x, answer.status_code, answer.json()))
    return latencies, answers


def assert_all_live(answers: list[tuple[float, int, dict[str, Any]]]) -> None:
    for x, status, body in answers:
        assert status == 200, (x, status, body)
        assert body == {"y": x, "model": "live"}, (x, body)


def settled(installation: Installation, name: str) -> Any:
    """The report once every copy sent has been answered or failed."""

    def done() -> Any:
        report = installation.client.shadow(name, limit=1000)
        c = report.counters
        return report if c.mirrored and c.compared + c.failed == c.mirrored else None

    return wait_for(done, timeout=SHADOW_TIMEOUT + 20, what="every mirrored copy to end")


def summary(latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[int(len(ms) * 0.95) - 1]
    return f"median {statistics.median(ms):.2f} ms, p95 {p95:.2f} ms over {len(ms)} calls"


def test_mirrors_the_share_and_callers_only_get_live_answers(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    name = unique_name
    token, cand = deploy_pair(installation, name, workdir, {"name": "cand", "scale": 2.0})
    installation.eascmd("shadow", name, "--to", cand, "--percent", "20")
    shown = installation.eascmd_json("shadow", name)
    assert shown["Setting"] == {"Target": cand, "Percent": 20.0}
    _, answers = call_all(installation, name, token, 100)
    assert_all_live(answers)
    report = settled(installation, name)
    c = report.counters
    assert abs(c.mirrored - 20) <= 2, c  # the share, within two calls
    assert c.compared == c.mirrored and c.disagreed == c.mirrored and c.agreed == 0, c
    for pair in report.pairs:
        live, shadow = json.loads(pair.live_body), json.loads(pair.shadow_body)
        assert live["model"] == "live" and shadow["model"] == "cand"
        assert shadow["y"] == 2 * live["y"]
        assert pair.live_status == pair.shadow_status == 200 and not pair.same
    # The CLI's report reads the same counters.
    cli = installation.eascmd_json("shadow", name, "--report")
    assert cli["Counters"]["Mirrored"] == c.mirrored
    assert "Disagreed" in installation.eascmd("shadow", name, "--report").stdout
    # Off: no more copies, the record stays readable.
    installation.eascmd("shadow", name, "--off")  # returns once the gateway took it
    assert installation.client.shadow(name).setting is None
    _, more = call_all(installation, name, token, 20)
    assert_all_live(more)
    assert installation.client.shadow(name).counters.mirrored == c.mirrored


def test_an_identical_candidate_agrees_on_every_copy(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    name = unique_name
    token, cand = deploy_pair(installation, name, workdir, {"name": "live", "scale": 1.0})
    installation.client.set_shadow(name, cand, 50)
    installation.client.wait_shadow_applied(name)
    _, answers = call_all(installation, name, token, 40)
    assert_all_live(answers)
    c = settled(installation, name).counters
    assert c.mirrored == 20 and c.agreed == 20 and c.disagreed == 0, c


def test_a_hung_candidate_does_not_slow_callers_and_drops_are_counted(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    name = unique_name
    token, cand = deploy_pair(
        installation, name, workdir, {"name": "cand", "scale": 1.0, "delay_ms": 60_000}
    )
    before, answers = call_all(installation, name, token, 60)
    assert_all_live(answers)
    installation.client.set_shadow(name, cand, 100)
    installation.client.wait_shadow_applied(name)
    during, answers = call_all(installation, name, token, 60)
    assert_all_live(answers)
    c = installation.client.shadow(name).counters
    # At most the bound in flight; every copy over it dropped and counted, none lost. (The
    # 60 calls take far less than the copies' timeout, so few slots free up meanwhile.)
    assert c.mirrored + c.dropped.get("in_flight", 0) == 60, c
    assert c.dropped.get("in_flight", 0) >= 60 - 2 * MAX_IN_FLIGHT, c
    text = httpx.get(f"{installation.gateway_url}/api/builtin/metrics").text
    dropped = metric_in(text, "eas_gateway_shadow_calls_total", outcome="dropped_in_flight")
    assert dropped >= c.dropped["in_flight"]
    report = settled(installation, name)
    assert report.counters.failed == report.counters.mirrored
    assert all(p.shadow_status == 0 and p.shadow_error for p in report.pairs)
    print(f"\ncaller latency without mirroring: {summary(before)}")
    print(f"caller latency mirroring 100% to a hung candidate: {summary(during)}")
    print(f"copies: {report.counters.mirrored} sent, dropped {report.counters.dropped}")


def test_shadow_settings_are_refused_with_the_field_named(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    name = unique_name
    installation.client.create_service(linear(name, workdir, {"name": "live"}))
    bad = installation.eascmd("shadow", name, "--to", name, "--percent", "10", check=False)
    assert bad.returncode != 0 and "Target" in bad.stderr, bad.stderr
    bad = installation.eascmd("shadow", name, "--to", "nosuch", "--percent", "10", check=False)
    assert bad.returncode != 0 and "Target: service 'nosuch' not found" in bad.stderr
    bad = installation.eascmd("shadow", name, "--to", "x", "--percent", "120", check=False)
    assert bad.returncode != 0 and "Percent" in bad.stderr, bad.stderr
    bad = installation.eascmd("shadow", name, "--to", "x", check=False)
    assert bad.returncode != 0 and "--percent" in bad.stderr
