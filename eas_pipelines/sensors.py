"""The sensors of a pipeline.

    <service>_new_model    new bytes under the watched store prefix → one `deploy` run for them
    <service>_health       the live version breaks → `rollback`: judged on its real traffic from
                           the metrics API (eas_pipelines.health), or probed with the smoke
                           requests (``judge: probe``)
    <service>_run_failure  a run of this pipeline failed → POST to the declared webhook

The new-model sensor keys on content, not on file times: its cursor holds the digests of the
artefacts it has seen (sha256 of a local file, an OSS object's ETag) and each run is named
after the digest (``run_key``), so a model starts one deploy however often the sensor is
evaluated, and touching a file or uploading the same bytes again starts none. On its very first
evaluation (no cursor) it deploys only the newest artefact: the history already in the store
is not replayed version by version.

The health sensor only rolls back a version the pipeline may blame on the last deployment:
the newest version of the service (not one a rollback already returned to), younger than the
declared window, while no run of the service is in flight. Its run key names the version, so
one broken version is rolled back once.
"""

# No `from __future__ import annotations` here: Dagster reads the annotations of op, asset
# and sensor parameters (config classes, resources) at definition time, as objects.

import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import httpx
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from eas_core.errors import EASError, NotFound
from eas_core.sdk import ServiceStatus
from eas_pipelines.assets import SERVICE_TAG
from eas_pipelines.declaration import PipelineDeclaration
from eas_pipelines.health import judge_live
from eas_pipelines.jobs import deploy_run_config, rollback_run_config
from eas_pipelines.resources import EASResource
from eas_pipelines.rollout import Rollout
from eas_pipelines.smoke import run_smoke_tests
from eas_pipelines.stores import StoredArtefact, open_store

_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _status(enabled: bool) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if enabled else dg.DefaultSensorStatus.STOPPED


# Digests the cursor remembers: a store keeps its models, but a cursor must stay small.
CURSOR_DIGESTS = 1000


def new_artefacts(
    found: list[StoredArtefact], cursor: str | None
) -> tuple[list[StoredArtefact], str]:
    """(artefacts whose bytes were not seen before, oldest first; the new cursor).

    The cursor is the list of content digests seen, oldest first: touching a file, or
    putting identical bytes under another name, brings nothing new; new bytes bring one
    artefact (the newest of those carrying them). Without a cursor only the newest artefact
    counts as new: the history already in the store is not replayed.
    """

    def order(artefact: StoredArtefact) -> tuple[float, str]:
        return artefact.modified, artefact.key

    ordered = sorted(found, key=order)
    if cursor is None:
        fresh = ordered[-1:]
        seen: list[str] = []
    else:
        stored = json.loads(cursor)
        if "digests" in stored:
            seen = list(stored["digests"])
        else:
            # A cursor of the time-keyed sensor this one replaced: what it had reached is
            # seen, so upgrading deploys nothing twice.
            reached = float(stored["t"])
            seen = list(dict.fromkeys(a.digest for a in ordered if a.modified <= reached))
        known = set(seen)
        by_digest = {a.digest: a for a in ordered if a.digest not in known}
        fresh = sorted(by_digest.values(), key=order)
    known = set(seen)
    for artefact in ordered:
        if artefact.digest not in known:
            known.add(artefact.digest)
            seen.append(artefact.digest)
    return fresh, json.dumps({"digests": seen[-CURSOR_DIGESTS:]})


def build_new_model_sensor(
    declaration: PipelineDeclaration, deploy_job: UnresolvedAssetJobDefinition
) -> dg.SensorDefinition | None:
    watched = declaration.sensors.new_model
    if watched is None:
        return None
    service = declaration.name

    @dg.sensor(
        name=f"{service}_new_model",
        job=deploy_job,
        minimum_interval_seconds=watched.interval_seconds,
        default_status=_status(watched.enabled),
        description=f"Deploys each new artefact under {declaration.store.kind} store prefix "
        f"{watched.prefix!r} to {service}, once.",
    )
    def new_model(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        found = open_store(declaration, None).list(watched.prefix)
        fresh, cursor = new_artefacts(found, context.cursor)
        if not fresh:
            context.update_cursor(cursor)
            return dg.SkipReason(f"no new artefact under {watched.prefix!r}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    # The bytes name the run: one deploy per model, whatever file carries it.
                    run_key=f"{service}:{artefact.digest}",
                    run_config=deploy_run_config(service, artefact.uri),
                    tags={SERVICE_TAG: service, "eas/trigger": "new_model"},
                )
                for artefact in fresh
            ],
            cursor=cursor,
        )

    return new_model


def build_health_sensor(
    declaration: PipelineDeclaration, rollback_job: dg.JobDefinition
) -> dg.SensorDefinition | None:
    health = declaration.sensors.health
    if health is None:
        return None
    service = declaration.name
    probe = declaration.smoke_tests.model_copy(
        update={
            "repeat": health.samples,
            "max_error_rate": health.max_error_rate,
            "latency": health.latency,
        }
    )

    @dg.sensor(
        name=f"{service}_health",
        # By name: a sensor holding the job object would make Dagster rebuild it to bind
        # resources, which warns (BetaWarning on `owners`) in dagster 1.13.
        job_name=rollback_job.name,
        minimum_interval_seconds=health.interval_seconds,
        default_status=_status(health.enabled),
        description=(
            f"Judges {service}'s real traffic (5xx share, latency) from the metrics API"
            if health.judge == "metrics"
            else f"Probes {service} with its smoke requests"
        )
        + "; rolls back a newly deployed version that breaks while serving.",
    )
    def health_sensor(
        context: dg.SensorEvaluationContext, eas: EASResource
    ) -> dg.RunRequest | dg.SkipReason:
        in_flight = context.instance.get_runs(
            filters=dg.RunsFilter(tags={SERVICE_TAG: service}, statuses=_IN_FLIGHT), limit=1
        )
        if in_flight:
            return dg.SkipReason(f"run {in_flight[0].run_id} of {service} is in flight")
        with eas.client() as client:
            rollout = Rollout(declaration, eas, client, context.log)
            try:
                info = rollout.describe()
            except NotFound:
                return dg.SkipReason(f"service {service} does not exist")
            current, latest = info.current_version, info.latest_version
            if info.status != ServiceStatus.RUNNING:
                return dg.SkipReason(f"{service} is {info.status}: {info.message}")
            if current == 1 or current != latest:
                return dg.SkipReason(
                    f"version {current} is not a new deployment (latest {latest}); not rolled back"
                )
            try:
                created = client.get_version(service, current).create_time
            except EASError as exc:
                return dg.SkipReason(f"cannot tell the age of version {current}: {exc}")
            age = (datetime.now(UTC) - created).total_seconds()
            if age > health.window_seconds:
                return dg.SkipReason(
                    f"version {current} has served {age:.0f} s, beyond the window of "
                    f"{health.window_seconds:g} s"
                )
            if health.judge == "metrics":
                now = datetime.now(UTC)
                start = max(now.timestamp() - health.metrics_window_seconds, created.timestamp())
                live = judge_live(client, service, health, start, now.timestamp())
                if not live.judged:
                    return dg.SkipReason(
                        f"{service} version {current} answered {live.answers} calls in the "
                        f"last {now.timestamp() - start:.0f} s, fewer than min_requests "
                        f"({health.min_requests}): not judged"
                    )
                failures, summary = live.failures, live.summary()
            else:
                with rollout.prober(info) as prober:
                    report = run_smoke_tests(prober, probe)
                failures, summary = report.failures, report.summary()
        if not failures:
            return dg.SkipReason(f"{service} version {current} is healthy: {summary}")
        context.log.warning(
            f"{service} version {current} breaks: {'; '.join(failures)}; rolling back"
        )
        return dg.RunRequest(
            run_key=f"health:{service}:{current}",
            run_config=rollback_run_config(service),
            tags={
                SERVICE_TAG: service,
                "eas/trigger": "health",
                "eas/broken_version": str(current),
            },
        )

    return health_sensor


def failure_payload(context: dg.RunFailureSensorContext, service: str) -> dict[str, Any]:
    run = context.dagster_run
    return {
        "service": service,
        "job": run.job_name,
        "run_id": run.run_id,
        "status": str(run.status.value),
        "message": context.failure_event.message,
        "tags": dict(run.tags),
    }


def build_run_failure_sensor(
    declaration: PipelineDeclaration, jobs: list[Any]
) -> dg.SensorDefinition | None:
    notify = declaration.sensors.run_failure
    if notify is None or notify.webhook is None:
        return None
    service = declaration.name
    url = notify.webhook

    @dg.run_failure_sensor(
        name=f"{service}_run_failure",
        monitored_jobs=jobs,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"POSTs each failed run of {service}'s jobs to {url} as JSON.",
    )
    def run_failure(context: dg.RunFailureSensorContext) -> None:
        payload = failure_payload(context, service)
        try:
            httpx.post(url, json=payload, timeout=10).raise_for_status()
        except httpx.HTTPError as exc:
            # A webhook that is down must not hide the failure: Dagster shows the run anyway.
            context.log.warning(
                f"webhook {url} did not take the failure of {payload['run_id']}: {exc}"
            )

    return run_failure
