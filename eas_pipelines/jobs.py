"""The jobs of a pipeline and its schedule.

    <service>_retrain_and_deploy   model → deployment (+ smoke check); what the schedule runs
    <service>_deploy               deployment of config.model_uri; what the new-model sensor runs
    <service>_rollback             `eascmd version` to config.version (default: the previous one)
    <service>_release              blue-green steps for a related service that exists already

Every run carries the tag ``eas/service: <service>``: the instance's run queue allows one run
per value (deploy/dagster/dagster.yaml), so two rollouts of one service never overlap, while
different services roll out side by side. The steps that change the service also sit in the
concurrency pool ``eas/<service>`` for instances that limit pools instead.
"""

# No `from __future__ import annotations` here: Dagster reads the annotations of op, asset
# and sensor parameters (config classes, resources) at definition time, as objects.

import itertools
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from pydantic import Field

from eas_core.errors import EASError
from eas_pipelines.assets import SERVICE_TAG, latest_metadata, pool
from eas_pipelines.checks import deployment_key, model_key, report_metadata
from eas_pipelines.declaration import PipelineDeclaration
from eas_pipelines.resources import EASResource
from eas_pipelines.rollout import Rollout, RolloutFailed, default_previous


def service_tags(declaration: PipelineDeclaration) -> dict[str, str]:
    return {SERVICE_TAG: declaration.name}


def deploy_op_name(service: str) -> str:
    return f"{service}__deployment"


def deploy_run_config(service: str, model_uri: str) -> dict[str, Any]:
    """The run config of `<service>_deploy` for one model URI (as the Launchpad shows it)."""
    return {"ops": {deploy_op_name(service): {"config": {"model_uri": model_uri}}}}


def rollback_run_config(service: str, version: int | None = None) -> dict[str, Any]:
    return {"ops": {f"{service}__rollback": {"config": {"version": version}}}}


def build_asset_jobs(
    declaration: PipelineDeclaration,
) -> tuple[UnresolvedAssetJobDefinition, UnresolvedAssetJobDefinition]:
    service = declaration.name
    retrain = dg.define_asset_job(
        f"{service}_retrain_and_deploy",
        selection=dg.AssetSelection.assets(model_key(service), deployment_key(service)),
        tags=service_tags(declaration),
        description=f"Retrain {service} with {declaration.train}, store the model, deploy it "
        f"({declaration.rollout.strategy}), smoke-test it, roll back on failure.",
    )
    deploy = dg.define_asset_job(
        f"{service}_deploy",
        selection=dg.AssetSelection.assets(deployment_key(service)),
        tags=service_tags(declaration),
        description=f"Deploy a given model URI to {service} (config: model_uri), "
        "smoke-test it, roll back on failure.",
    )
    return retrain, deploy


class RollbackConfig(dg.Config):
    version: int | None = Field(
        default=None,
        description="The version to make current. Default: the one that served before the "
        "live version.",
    )


class ReleaseConfig(dg.Config):
    related: str | None = Field(
        default=None,
        description="The related service (name_xxxxxxxx) to release. Default: the only "
        "related service of this service.",
    )
    steps: list[int] | None = Field(
        default=None, description="Traffic percentages, e.g. [10, 50, 100]. Default: declared."
    )


def _fail(
    context: dg.OpExecutionContext, declaration: PipelineDeclaration, failed: RolloutFailed
) -> dg.Failure:
    from eas_pipelines.checks import failure_metadata

    metadata = failure_metadata(declaration, failed)
    if failed.state is not None:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=deployment_key(declaration.name), metadata=failed.state.metadata()
            )
        )
    context.log.error(str(failed))
    return dg.Failure(description=f"{declaration.name}: {failed}", metadata=metadata)


def build_rollback_job(declaration: PipelineDeclaration) -> dg.JobDefinition:
    service = declaration.name

    @dg.op(name=f"{service}__rollback", pool=pool(service), tags=service_tags(declaration))
    def rollback(context: dg.OpExecutionContext, config: RollbackConfig, eas: EASResource) -> None:
        with eas.client() as client:
            rollout = Rollout(declaration, eas, client, context.log)
            current = rollout.describe().current_version
            recorded = latest_metadata(context.instance, deployment_key(service))
            target = config.version or default_previous(current, recorded)
            if target is None:
                raise dg.Failure(
                    f"{service}: version {current} is the first; nothing to roll back to"
                )
            try:
                state = rollout.rollback(target)
            except EASError as exc:
                raise dg.Failure(f"{service}: rollback to version {target} failed: {exc}") from None
            report = rollout.smoke(rollout.describe())
            # Rolling back again goes further back, never forward to the version just left.
            metadata = {
                **state.metadata(),
                "previous_version": default_previous(target, None),
                "rolled_back_from": current,
            }
            context.log_event(
                dg.AssetMaterialization(asset_key=deployment_key(service), metadata=metadata)
            )
            if not report.passed:
                raise dg.Failure(
                    f"{service}: version {target} serves again but fails its smoke tests: "
                    + "; ".join(report.failures),
                    metadata=report_metadata(report),
                )
            context.log.info(f"{service}: version {target} serves and passes its smoke tests")

    @dg.job(
        name=f"{service}_rollback",
        tags=service_tags(declaration),
        description=f"Make an earlier version of {service} current (config: version; default: "
        "the previous one), then smoke-test it.",
    )
    def rollback_job() -> None:
        rollback()

    return rollback_job


def build_release_job(declaration: PipelineDeclaration) -> dg.JobDefinition:
    service = declaration.name

    @dg.op(name=f"{service}__release", pool=pool(service), tags=service_tags(declaration))
    def release(context: dg.OpExecutionContext, config: ReleaseConfig, eas: EASResource) -> None:
        with eas.client() as client:
            rollout = Rollout(declaration, eas, client, context.log)
            candidates = [config.related] if config.related else rollout.related_services()
            if len(candidates) != 1:
                raise dg.Failure(
                    f"{service}: expected one related service to release, found "
                    f"{candidates or 'none'}; give config.related (create one with "
                    "`eascmd create -r` or a blue_green deploy)"
                )
            steps = config.steps or declaration.rollout.steps
            if any(b <= a for a, b in itertools.pairwise(steps)) or steps[-1] != 100:
                raise dg.Failure(f"steps: {steps} must increase and end at 100")
            try:
                outcome = rollout.release(candidates[0], steps=steps)
            except RolloutFailed as failed:
                raise _fail(context, declaration, failed) from None
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=deployment_key(service),
                    metadata={
                        **outcome.state.metadata(),
                        "released": candidates[0],
                        "bakes": dg.MetadataValue.json(
                            {f"{w}%": r.summary() for w, r in outcome.bakes}
                        ),
                    },
                )
            )

    @dg.job(
        name=f"{service}_release",
        tags=service_tags(declaration),
        description=f"Blue-green release of a related service of {service}: step its traffic "
        "share up with a bake at each step, promote it, or release 0 and delete it on failure.",
    )
    def release_job() -> None:
        release()

    return release_job


def build_schedule(
    declaration: PipelineDeclaration, job: UnresolvedAssetJobDefinition
) -> dg.ScheduleDefinition | None:
    schedule = declaration.schedule
    if schedule is None:
        return None
    return dg.ScheduleDefinition(
        name=f"{declaration.name}_schedule",
        job=job,
        cron_schedule=schedule.cron,
        execution_timezone=schedule.timezone,
        tags=service_tags(declaration),
        default_status=(
            dg.DefaultScheduleStatus.RUNNING
            if schedule.enabled
            else dg.DefaultScheduleStatus.STOPPED
        ),
        description=f"Retrain and deploy {declaration.name} ({schedule.cron} {schedule.timezone}).",
    )
