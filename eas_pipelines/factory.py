"""One factory: a declaration in, a pipeline's Dagster definitions out.

Every declaration file of a directory goes through ``build_pipeline``; ``load_definitions``
merges them into one ``Definitions``. Adding a pipeline is adding a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from eas_pipelines.assets import build_deployment_asset, build_model_asset
from eas_pipelines.declaration import PipelineDeclaration, load_declarations
from eas_pipelines.jobs import (
    build_asset_jobs,
    build_release_job,
    build_rollback_job,
    build_schedule,
)
from eas_pipelines.resources import EASResource
from eas_pipelines.sensors import (
    build_health_sensor,
    build_new_model_sensor,
    build_run_failure_sensor,
)


@dataclass(frozen=True)
class Pipeline:
    """What one declaration becomes."""

    declaration: PipelineDeclaration
    assets: list[dg.AssetsDefinition]
    jobs: list[Any]
    schedules: list[dg.ScheduleDefinition] = field(default_factory=list)
    sensors: list[dg.SensorDefinition] = field(default_factory=list)


def build_pipeline(declaration: PipelineDeclaration) -> Pipeline:
    retrain, deploy = build_asset_jobs(declaration)
    rollback = build_rollback_job(declaration)
    release = build_release_job(declaration)
    jobs: list[Any] = [retrain, deploy, rollback, release]
    schedule = build_schedule(declaration, retrain)
    sensors = [
        sensor
        for sensor in (
            build_new_model_sensor(declaration, deploy),
            build_health_sensor(declaration, rollback),
            build_run_failure_sensor(declaration, jobs),
        )
        if sensor is not None
    ]
    return Pipeline(
        declaration=declaration,
        assets=[build_model_asset(declaration), build_deployment_asset(declaration)],
        jobs=jobs,
        schedules=[schedule] if schedule is not None else [],
        sensors=sensors,
    )


def build_definitions(
    declarations: list[PipelineDeclaration], eas: EASResource | None = None
) -> dg.Definitions:
    """All pipelines in one ``Definitions``, sharing one connection resource (``eas``)."""
    pipelines = [build_pipeline(d) for d in declarations]
    return dg.Definitions(
        assets=[a for p in pipelines for a in p.assets],
        jobs=[j for p in pipelines for j in p.jobs],
        schedules=[s for p in pipelines for s in p.schedules],
        sensors=[s for p in pipelines for s in p.sensors],
        resources={"eas": eas or EASResource()},
    )


def load_definitions(directory: Path, eas: EASResource | None = None) -> dg.Definitions:
    """Every declaration under ``directory`` (``**/pipeline.yaml``, ``**/*.pipeline.yaml``)."""
    return build_definitions(load_declarations(directory), eas)
