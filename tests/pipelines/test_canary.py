"""Canary analysis under real traffic: a blue-green pipeline steps a new model up (5 → 25 → 50
→ 100 %) while callers keep calling, and judges each step on both sides' real metrics.

A bad model (every 20th call answers 500, or 3× slower) is caught at the first step and
rolled back; a good one passes every step and is promoted. The installation here collects
metrics every 0.5 s (the default 5 s would need minute-long windows) and is the module's own.
Each test prints what callers saw: the time until the previous version served everything
again, the share of calls the bad version answered, the calls it answered after the failing
verdict, and the failed calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from eas_pipelines.declaration import PipelineDeclaration
from eas_pipelines.factory import build_definitions
from eas_pipelines.resources import EASResource
from tests.pipelines.test_rollouts import deploy, failure_metadata, related_of, versions
from tests.support.installation import Installation, delete_services, start_installation
from tests.support.load import SteadyLoad

PROCESSOR = Path(__file__).resolve().parent / "processors" / "canary"
BASELINE_DELAY_MS = 10


@pytest.fixture(scope="module")
def fast_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("canary") / "data"
    data_dir.mkdir()
    running = start_installation(data_dir, extra_env={"EAS_METRICS_INTERVAL": "0.5"})
    yield running
    running.stop()


@pytest.fixture
def service(fast_metrics: Installation, unique_name: str) -> Iterator[str]:
    yield unique_name
    delete_services(fast_metrics.client, unique_name)


@pytest.fixture
def eas_fast(fast_metrics: Installation) -> EASResource:
    return EASResource(
        endpoint=fast_metrics.controller_url,
        access_key_id=fast_metrics.client.key.id,
        access_key_secret=fast_metrics.client.key.secret,
        gateway=fast_metrics.gateway_url,
        timeout=60,
    )


def canary_model(
    directory: Path, label: str, *, error_every: int = 0, delay_ms: int = BASELINE_DELAY_MS
) -> Path:
    path = directory / f"canary-{label}.json"
    path.write_text(json.dumps({"label": label, "error_every": error_every, "delay_ms": delay_ms}))
    return path


def canary_document(name: str, store: Path) -> dict[str, Any]:
    return {
        "service": {
            "name": name,
            "processor_type": "python",
            "processor_path": str(PROCESSOR),
            "processor_entry": "app.py",
            "metadata": {"instance": 1, "cpu": 0.1, "memory": 128},
        },
        "train": "tests.pipelines.training:train_flaky",
        "store": {"kind": "local", "path": str(store)},
        "smoke_tests": {"requests": [{"name": "smoke", "body": "smoke"}]},
        "rollout": {
            "strategy": "blue_green",
            "steps": [5, 25, 50, 100],
            "ready_timeout_seconds": 60,
        },
        "canary": {
            "window_seconds": 10,
            "interval_seconds": 0.5,
            "min_requests": 30,
            "min_latency_points": 5,
        },
    }


def canary_evaluation(result: dg.ExecuteInProcessResult) -> Any:
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == "canary"]
    assert len(found) == 1, [e.check_name for e in result.get_asset_check_evaluations()]
    return found[0]


@pytest.mark.parametrize(
    ("bad", "metric"),
    [({"error_every": 20}, "error share"), ({"delay_ms": 3 * BASELINE_DELAY_MS}, "latency")],
    ids=["5pct_errors", "3x_slower"],
)
def test_a_bad_model_is_caught_at_the_first_canary_step_and_rolled_back(
    fast_metrics: Installation,
    eas_fast: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Callable[[dict[str, Any]], PipelineDeclaration],
    service: str,
    tmp_path: Path,
    bad: dict[str, int],
    metric: str,
) -> None:
    name = service
    defs = build_definitions([declare(canary_document(name, tmp_path / "store"))], eas_fast)
    first = deploy(defs, dagster_instance, name, canary_model(tmp_path, "v1"))
    assert first.success, failure_metadata(first)
    token = fast_metrics.client.describe_service(name).access_token
    url = f"{fast_metrics.gateway_url}/api/predict/{name}"

    with SteadyLoad(url, token, b"ping", threads=4, max_seconds=150) as load:
        load.next_calls(50)  # callers are being answered before the rollout begins
        wall_offset = time.time() - time.monotonic()
        started = time.monotonic()
        result = deploy(defs, dagster_instance, name, canary_model(tmp_path, "v2", **bad))
        ended = time.monotonic()
        load.settle(lambda body: body == b"v1", count=50)
        answers = list(load.result.answers)

    assert not result.success
    failure = failure_metadata(result)
    assert failure["failed_check"] == "canary", failure
    assert failure["reason"].startswith(f"at 5%: {metric}"), failure["reason"]
    assert failure["canary_verdict"] == "fail"
    assert [s["weight"] for s in failure["canary_steps"]] == [5]
    evaluation = canary_evaluation(result)
    assert not evaluation.passed
    table = evaluation.metadata["canary"].value
    assert "| error share |" in table and "| latency p50 (ms) |" in table, table
    assert "FAIL" in table
    assert related_of(fast_metrics, name) == []
    assert versions(fast_metrics, name) == (1, 1)

    # What callers saw from the deploy's start on: every answer is v1's, v2's ("v2" or its
    # 500 "broken"), or a failure of the switch itself.
    during = [(t, status, body) for t, status, body in answers if t >= started]
    by_bad = [(t, status) for t, status, body in during if body in (b"v2", b"broken")]
    # The pipeline reports its verdict once the canary is retired; the analysis read both
    # sides a little earlier, and the bad version answered callers in between.
    verdict = failure["canary_decided_at"] - wall_offset
    judged = failure["canary_judged_at"] - wall_offset
    restored = max((t for t, _ in by_bad), default=started) - started
    after_verdict = sum(1 for t, _ in by_bad if t > verdict)
    after_analysis = sum(1 for t, _ in by_bad if t > judged)
    failed = [status for _, status, body in during if status != 200]
    print(
        f"\n[{metric}] deploy start → previous version serving 100 %: {restored:.1f} s "
        f"(run ended after {ended - started:.1f} s); answered by the bad version: "
        f"{len(by_bad)}/{len(during)} = {len(by_bad) / len(during):.2%}; after the failing "
        f"verdict: {after_verdict} (after the analysis, {verdict - judged:.1f} s before it: "
        f"{after_analysis}); failed calls seen by callers: {len(failed)} "
        f"({sorted(set(failed))})"
    )
    assert by_bad, "the bad version never answered a caller: the canary step judged nothing"
    assert judged <= verdict
    assert after_verdict == 0, f"{after_verdict} answers by the refused version after the verdict"
    # Calls sent once the run had ended were all answered by the previous version.
    assert all(body == b"v1" for status, body in load.result.sent_since(ended))
    assert len(by_bad) / len(during) <= 0.05


def test_a_good_model_passes_every_canary_step_and_is_promoted(
    fast_metrics: Installation,
    eas_fast: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Callable[[dict[str, Any]], PipelineDeclaration],
    service: str,
    tmp_path: Path,
) -> None:
    name = service
    defs = build_definitions([declare(canary_document(name, tmp_path / "store"))], eas_fast)
    assert deploy(defs, dagster_instance, name, canary_model(tmp_path, "v1")).success
    token = fast_metrics.client.describe_service(name).access_token
    url = f"{fast_metrics.gateway_url}/api/predict/{name}"

    with SteadyLoad(url, token, b"ping", threads=4, max_seconds=150) as load:
        load.next_calls(50)
        result = deploy(defs, dagster_instance, name, canary_model(tmp_path, "v3"))
        load.settle(lambda body: body == b"v3", count=50)
        failed = [a for a in load.result.answers if a[1] != 200]

    assert result.success, failure_metadata(result)
    evaluation = canary_evaluation(result)
    assert evaluation.passed
    steps = evaluation.metadata["canary_steps"].value
    assert [(s["weight"], s["verdict"]) for s in steps] == [(5, "pass"), (25, "pass"), (50, "pass")]
    assert "PASS" in evaluation.metadata["canary"].value
    assert "```" in evaluation.metadata["canary_chart"].value
    assert versions(fast_metrics, name) == (2, 2)
    assert related_of(fast_metrics, name) == []
    assert failed == []


def test_health_sensor_judges_real_traffic_and_rolls_back_a_version_that_breaks(
    fast_metrics: Installation,
    eas_fast: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Callable[[dict[str, Any]], PipelineDeclaration],
    service: str,
    tmp_path: Path,
) -> None:
    name = service
    document = canary_document(name, tmp_path / "store")
    del document["canary"]
    document["rollout"] = {"strategy": "all_at_once", "ready_timeout_seconds": 60}
    document["sensors"] = {
        "health": {"interval_seconds": 1, "metrics_window_seconds": 30, "max_error_rate": 0.01}
    }
    defs = build_definitions([declare(document)], eas_fast)
    sensor = defs.resolve_sensor_def(f"{name}_health")

    def evaluate() -> tuple[list[dg.RunRequest], str]:
        context = dg.build_sensor_context(instance=dagster_instance, resources={"eas": eas_fast})
        tick = sensor.evaluate_tick(context)
        return list(tick.run_requests or []), tick.skip_message or ""

    assert deploy(defs, dagster_instance, name, canary_model(tmp_path, "v1")).success
    assert deploy(defs, dagster_instance, name, canary_model(tmp_path, "v2")).success
    requests, skipped = evaluate()
    assert requests == [] and "not judged" in skipped  # nobody has called version 2 yet
    token = fast_metrics.client.describe_service(name).access_token
    url = f"{fast_metrics.gateway_url}/api/predict/{name}"

    with SteadyLoad(url, token, b"ping", threads=2, max_seconds=60) as load:
        load.next_calls(200)
        time.sleep(1.5)  # a few collections of the calls
        requests, skipped = evaluate()
        assert requests == [] and "is healthy" in skipped, skipped
        bad = deploy(defs, dagster_instance, name, canary_model(tmp_path, "v3", error_every=20))
        assert bad.success  # its one smoke ping passes; every 20th call fails
        load.next_calls(300)
        time.sleep(1.5)
        [request] = evaluate()[0]

    assert request.run_key == f"health:{name}:3"
    rollback = defs.resolve_job_def(f"{name}_rollback").execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=dagster_instance
    )
    assert rollback.success
    assert versions(fast_metrics, name) == (2, 3)
