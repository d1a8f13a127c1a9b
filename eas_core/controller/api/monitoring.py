"""/api/v1/services/{name}/metrics: a service's monitoring time series (SPEC §11)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from eas_core.config import ControllerSettings
from eas_core.controller.api.auth import authenticated
from eas_core.controller.api.errors import ERROR_RESPONSES
from eas_core.controller.api.services import ServiceName
from eas_core.controller.store import COARSE, FINE, Repository, SeriesStore
from eas_core.errors import BadRequest
from eas_core.spec.monitoring import METRICS, Series, ServiceMetrics, parse_since

router = APIRouter(
    prefix="/api/v1/services", dependencies=[Depends(authenticated)], responses=ERROR_RESPONSES
)


def read_metrics(
    settings: ControllerSettings,
    repo: Repository,
    series: SeriesStore,
    name: str,
    *,
    metrics: list[str] | None,
    since: float,
    instance: str | None,
) -> ServiceMetrics:
    repo.get_service(name)  # NotFound names the service
    # Within the fine tier's retention its points answer; beyond it, the averaged ones.
    fine = since <= settings.metrics_fine_seconds
    tier, step = (
        (FINE, settings.metrics_interval) if fine else (COARSE, settings.metrics_coarse_step)
    )
    found: dict[tuple[str, str], Series] = {}
    for point in series.read(name, tier, time.time() - since, metrics=metrics, instance=instance):
        key = (point.metric, point.instance)
        if key not in found:
            found[key] = Series(metric=point.metric, instance=point.instance or None)
        found[key].points.append((point.time, point.value))
    ordered = sorted(
        found.values(), key=lambda s: (s.instance or "", list(METRICS).index(s.metric))
    )
    return ServiceMetrics(service=name, step=step, since=since, series=ordered)


@router.get("/{name}/metrics", response_model=ServiceMetrics, response_model_by_alias=True)
async def metrics(
    request: Request,
    name: ServiceName,
    metric: Annotated[list[str] | None, Query(max_length=len(METRICS))] = None,
    since: Annotated[str, Query(max_length=32)] = "15m",
    instance: Annotated[str | None, Query(max_length=256)] = None,
) -> ServiceMetrics:
    """The service's series — the whole service's and each instance's, or one instance's —
    over the last ``since`` (``30s``, ``15m``, ``2h``, ``7d``); ``metric`` (repeatable)
    narrows them to those metrics."""
    unknown = [m for m in metric or [] if m not in METRICS]
    if unknown:
        raise BadRequest(f"metric: {unknown[0]!r} is not one of {', '.join(METRICS)}")
    try:
        seconds = parse_since(since)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    app = request.app
    return await run_in_threadpool(
        read_metrics,
        app.state.settings,
        app.state.repo,
        app.state.series,
        name,
        metrics=metric,
        since=seconds,
        instance=instance,
    )
