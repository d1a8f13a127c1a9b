"""Pipelines against a real installation: jobs executed in process, real models.

Each test deploys its own service (unique name) and deletes it at the end. The schedule and
sensors are evaluated the way the daemon evaluates them, then the run they ask for executes.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from eas_core.sdk import ServiceStatus, file_digest
from eas_pipelines.factory import build_definitions
from eas_pipelines.jobs import deploy_run_config
from eas_pipelines.resources import EASResource
from tests.pipelines.conftest import flaky_document, heart_document
from tests.pipelines.training import flaky_model
from tests.support.installation import Installation

LOW_RISK = [
    {
        "sex": 0, "cp": 2, "fbs": 0, "restecg": 0, "exang": 0, "slop": 0, "thal": 0,
        "age": 38, "trestbps": 118, "chol": 190, "thalach": 178, "oldpeak": 0.0, "ca": 0,
    }
]  # fmt: skip


def deploy(
    defs: dg.Definitions, instance: dg.DagsterInstance, name: str, uri: str | Path
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(f"{name}_deploy")
    return job.execute_in_process(
        run_config=deploy_run_config(name, str(uri)), instance=instance, raise_on_error=False
    )


def smoke_evaluation(result: dg.ExecuteInProcessResult) -> Any:
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "smoke"
    return evaluation


def failure_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = result.get_step_failure_events()
    failure = event.step_failure_data.user_failure_data
    assert failure is not None, event.step_failure_data.error
    return {k: v.value for k, v in failure.metadata.items()}


def versions(installation: Installation, name: str) -> tuple[int, int]:
    info = installation.eascmd_json("desc", name)
    return info["CurrentVersion"], info["LatestVersion"]


def related_of(installation: Installation, name: str) -> list[str]:
    return [
        s.service_name
        for s in installation.client.list_services()
        if s.service_name.startswith(name + "_") and s.status != ServiceStatus.DELETING
    ]


def predict_json(installation: Installation, name: str, body: Any) -> Any:
    token = installation.client.describe_service(name).access_token
    answer = installation.predict(name, json.dumps(body), token)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_schedule_tick_retrains_and_deploys_a_new_version_with_passing_checks(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    name = cleanup(unique_name)
    defs = build_definitions([declare(heart_document(name, tmp_path / "store"))], eas)
    schedule = defs.resolve_schedule_def(f"{name}_schedule")
    assert schedule.cron_schedule == "0 */2 * * *"
    job = defs.resolve_job_def(f"{name}_retrain_and_deploy")

    ticks = [datetime(2025, 1, 1, hour, tzinfo=UTC) for hour in (0, 2)]
    for tick, expected in zip(ticks, (1, 2), strict=True):
        context = dg.build_schedule_context(
            instance=dagster_instance, scheduled_execution_time=tick
        )
        [request] = schedule.evaluate_tick(context).run_requests or []
        assert request.tags["eas/service"] == name
        result = job.execute_in_process(
            run_config=request.run_config, tags=request.tags, instance=dagster_instance
        )
        assert result.success
        assert versions(installation, name) == (expected, expected)

    assert smoke_evaluation(result).passed
    materialized = result.asset_materializations_for_node(f"{name}__model")[0].metadata
    model: dict[str, Any] = {k: v.value for k, v in materialized.items()}
    assert model["metric_accuracy"] > 0.7
    assert str(model["uri"]).startswith(str(tmp_path / "store" / "trained"))
    deployment = dagster_instance.get_latest_materialization_event(
        dg.AssetKey([name, "deployment"])
    )
    assert deployment is not None and deployment.asset_materialization is not None
    recorded = {k: v.value for k, v in deployment.asset_materialization.metadata.items()}
    assert (recorded["live_version"], recorded["previous_version"]) == (2, 1)
    assert recorded["model_uri"] == model["uri"]
    assert (
        installation.eascmd_json("desc", name)["ServiceConfig"]["model_path"]
        == recorded["model_uri"]
    )
    [answer] = predict_json(installation, name, LOW_RISK)
    assert answer["p_1"] < 0.1


def test_a_model_that_answers_wrong_is_rolled_back_and_the_run_fails(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
    models: dict[str, Path],
) -> None:
    name = cleanup(unique_name)
    defs = build_definitions([declare(heart_document(name, tmp_path / "store"))], eas)
    assert deploy(defs, dagster_instance, name, models["good"]).success

    result = deploy(defs, dagster_instance, name, models["inverted"])

    assert not result.success
    assert versions(installation, name) == (1, 2)
    failure = failure_metadata(result)
    assert failure["failed_check"] == "smoke"
    assert failure["rolled_back"] is True
    assert failure["failing_request"] == "low_risk_patient"
    assert '"p_1"' in failure["failing_response"]
    assert '"age": 38' in failure["failing_request_body"]
    assert any("p_1" in p for p in failure["failing_problems"])
    evaluation = smoke_evaluation(result)
    assert not evaluation.passed
    assert evaluation.metadata["failing_request"].value == "low_risk_patient"
    logs = [e.user_message for e in dagster_instance.all_logs(result.run_id)]
    assert any("smoke failed" in m and "low_risk_patient" in m for m in logs)
    [answer] = predict_json(installation, name, LOW_RISK)
    assert answer["p_1"] < 0.1  # the previous (good) version serves


def test_a_model_that_fails_to_load_is_rolled_back_and_the_run_fails(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
    models: dict[str, Path],
) -> None:
    name = cleanup(unique_name)
    defs = build_definitions([declare(heart_document(name, tmp_path / "store"))], eas)
    assert deploy(defs, dagster_instance, name, models["good"]).success

    result = deploy(defs, dagster_instance, name, models["garbage"])

    assert not result.success
    assert versions(installation, name) == (1, 2)
    failure = failure_metadata(result)
    assert failure["failed_check"] == "ready"
    assert "never became ready" in failure["reason"]
    [answer] = predict_json(installation, name, LOW_RISK)
    assert answer["p_1"] < 0.1


def test_new_model_sensor_starts_one_deploy_per_new_model_bytes(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
    models: dict[str, Path],
) -> None:
    name = cleanup(unique_name)
    store = tmp_path / "store"
    defs = build_definitions([declare(heart_document(name, store))], eas)
    sensor = defs.resolve_sensor_def(f"{name}_new_model")
    incoming = store / "trained" / "incoming"

    def evaluate(cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
        context = dg.build_sensor_context(instance=dagster_instance, cursor=cursor)
        data = sensor.evaluate_tick(context)
        return list(data.run_requests or []), data.cursor

    requests, cursor = evaluate(None)
    assert requests == []
    first = incoming / "2025-01-01" / "model.pmml"
    first.parent.mkdir(parents=True)
    shutil.copyfile(models["good"], first)
    requests, cursor = evaluate(cursor)
    assert [r.run_key for r in requests] == [f"{name}:{file_digest(first)}"]
    assert requests[0].run_config == deploy_run_config(name, str(first))
    assert evaluate(cursor)[0] == []  # evaluated again: nothing new, no second deploy

    later = first.stat().st_mtime + 1  # as a later upload would have
    os.utime(first, (later, later))  # touched: the same bytes, nothing to deploy
    assert evaluate(cursor)[0] == []
    copy = incoming / "2025-01-02" / "model.pmml"  # the same bytes uploaded again
    copy.parent.mkdir()
    shutil.copyfile(models["good"], copy)
    assert evaluate(cursor)[0] == []

    second = incoming / "2025-01-03" / "model.pmml"  # new bytes (a valid PMML still)
    second.parent.mkdir()
    second.write_bytes(models["good"].read_bytes() + b"\n<!-- retrained -->\n")
    requests, cursor = evaluate(cursor)
    assert [r.run_key for r in requests] == [f"{name}:{file_digest(second)}"]
    assert evaluate(cursor)[0] == []

    job = defs.resolve_job_def(f"{name}_deploy")
    for _ in range(2):  # the same artefact twice: the second run makes no new version
        result = job.execute_in_process(
            run_config=requests[0].run_config, tags=requests[0].tags, instance=dagster_instance
        )
        assert result.success
        assert versions(installation, name) == (1, 1)
    recorded = result.asset_materializations_for_node(f"{name}__deployment")[0].metadata
    assert recorded["new_version"].value is False
    assert installation.eascmd_json("desc", name)["ServiceConfig"]["model_path"] == str(second)


def test_a_run_that_died_after_modify_is_finished_by_the_next_run(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    name = cleanup(unique_name)
    defs = build_definitions([declare(flaky_document(name, tmp_path / "s"))], eas)
    assert deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v1")).success
    v2 = flaky_model(tmp_path, "v2")
    # What a run leaves behind when its process dies right after `modify`: a version rolling
    # out that nobody smoke-tests.
    installation.client.modify_service(name, {"model_path": str(v2)})

    result = deploy(defs, dagster_instance, name, v2)

    assert result.success
    assert versions(installation, name) == (2, 2)  # no third version
    recorded = result.asset_materializations_for_node(f"{name}__deployment")[0].metadata
    assert (recorded["new_version"].value, recorded["previous_version"].value) == (False, 1)
    assert smoke_evaluation(result).passed


def test_blue_green_release_whose_bake_fails_is_released_back_and_deleted(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    name = cleanup(unique_name)
    rollout = {
        "strategy": "blue_green",
        "steps": [10, 50, 100],
        "bake_seconds": 3,
        "probe_interval_seconds": 0.02,
        "ready_timeout_seconds": 60,
    }
    document = flaky_document(
        name, tmp_path / "store", rollout=rollout, rollback_on={"bake": {"max_5xx_share": 0.02}}
    )
    defs = build_definitions([declare(document)], eas)
    assert deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v1")).success

    # Passes its smoke test (one ping), then breaks under the 10 % of probe traffic.
    result = deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v2", fail_after=2))

    assert not result.success
    failure = failure_metadata(result)
    assert failure["failed_check"] == "bake"
    assert failure["reason"].startswith("at 10%: 5xx share")
    assert failure["failing_status"] == 500
    assert failure["failing_response"] == "broken"
    assert related_of(installation, name) == []
    assert versions(installation, name) == (1, 1)
    token = installation.client.describe_service(name).access_token
    labels = {installation.predict(name, "label", token).text for _ in range(20)}
    assert labels == {"v1"}


def test_blue_green_release_steps_up_and_promotes_the_new_model(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    name = cleanup(unique_name)
    rollout = {
        "strategy": "blue_green",
        "steps": [50, 100],
        "bake_seconds": 0.5,
        "probe_interval_seconds": 0.02,
    }
    defs = build_definitions([declare(flaky_document(name, tmp_path / "s", rollout=rollout))], eas)
    assert deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v1")).success
    # A related service left by a run that died mid-release: the next rollout retires it.
    leftover = installation.client.create_service(
        {**installation.client.describe_service(name).service_config, "name": name},
        related=True,
    ).service_name

    result = deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v2"))

    assert result.success, failure_metadata(result)
    assert versions(installation, name) == (2, 2)
    assert leftover not in related_of(installation, name)
    assert related_of(installation, name) == []
    evaluation = smoke_evaluation(result)
    assert evaluation.passed
    assert set(evaluation.metadata) >= {"bake_50pct", "bake_100pct"}
    token = installation.client.describe_service(name).access_token
    assert {installation.predict(name, "label", token).text for _ in range(10)} == {"v2"}


def test_release_job_steps_a_related_service_up_and_promotes_it(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    name = cleanup(unique_name)
    rollout = {"strategy": "blue_green", "steps": [100], "bake_seconds": 0.3}
    defs = build_definitions([declare(flaky_document(name, tmp_path / "s", rollout=rollout))], eas)
    assert deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v1")).success
    # A related service made by hand (`eascmd create -r`), to be released by the job.
    document = installation.client.describe_service(name).service_config
    document["model_path"] = str(flaky_model(tmp_path, "v2"))
    related = installation.client.create_service(document, related=True).service_name
    installation.client.wait_until_running(related, timeout=60)

    result = defs.resolve_job_def(f"{name}_release").execute_in_process(
        run_config={"ops": {f"{name}__release": {"config": {"steps": [20, 100]}}}},
        instance=dagster_instance,
    )

    assert result.success
    assert versions(installation, name) == (2, 2)
    assert related_of(installation, name) == []
    token = installation.client.describe_service(name).access_token
    assert installation.predict(name, "label", token).text == "v2"
    materialization = result.asset_materializations_for_node(f"{name}__release")[0]
    assert materialization.metadata["released"].value == related


def test_probing_health_sensor_rolls_back_a_new_version_that_breaks_while_serving(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    declare: Any,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    name = cleanup(unique_name)
    sensors = {
        "health": {"judge": "probe", "interval_seconds": 1, "samples": 4, "max_error_rate": 0.0}
    }
    defs = build_definitions([declare(flaky_document(name, tmp_path / "s", sensors=sensors))], eas)
    sensor = defs.resolve_sensor_def(f"{name}_health")

    def evaluate() -> list[dg.RunRequest]:
        context = dg.build_sensor_context(instance=dagster_instance, resources={"eas": eas})
        return list(sensor.evaluate_tick(context).run_requests or [])

    assert deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v1")).success
    assert evaluate() == []  # version 1: nothing to roll back to
    assert deploy(defs, dagster_instance, name, flaky_model(tmp_path, "v2", fail_after=2)).success
    assert versions(installation, name) == (2, 2)

    [request] = evaluate()  # its smoke ping passed; serving, it breaks
    assert sensor.job_name == f"{name}_rollback"  # the sensor's only target
    assert request.run_key == f"health:{name}:2"
    result = defs.resolve_job_def(f"{name}_rollback").execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=dagster_instance
    )

    assert result.success
    assert versions(installation, name) == (1, 2)
    assert evaluate() == []  # version 1 is not a new deployment: left alone
    recorded = dagster_instance.get_latest_materialization_event(dg.AssetKey([name, "deployment"]))
    assert recorded is not None and recorded.asset_materialization is not None
    assert recorded.asset_materialization.metadata["rolled_back_from"].value == 2


@pytest.mark.parametrize("job", ["retrain_and_deploy", "deploy", "rollback", "release"])
def test_every_job_carries_the_service_tag_that_serialises_rollouts(
    declare: Any, tmp_path: Path, job: str
) -> None:
    defs = build_definitions([declare(heart_document("tagged", tmp_path))])
    assert defs.resolve_job_def(f"tagged_{job}").tags["eas/service"] == "tagged"
