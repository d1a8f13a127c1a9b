"""/api/v1/services/{name}/autoscale and /events: autoscaling rules, and what the controller
did to a service on its own, with why."""

from __future__ import annotations

import hmac
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from eas_core.config import ControllerSettings
from eas_core.controller.api.auth import authenticated
from eas_core.controller.api.errors import ERROR_RESPONSES
from eas_core.controller.api.services import ServiceName
from eas_core.controller.metrics.autoscaler import Autoscaler
from eas_core.controller.store import Repository, ScaleRuleRecord, ScalingStore
from eas_core.errors import Unauthorized
from eas_core.spec.monitoring import AutoscaleRule, AutoscaleStatus, Event
from eas_core.spec.paths import INTERNAL_TOKEN_HEADER, WAKE_PATH

router = APIRouter(
    prefix="/api/v1/services", dependencies=[Depends(authenticated)], responses=ERROR_RESPONSES
)


def _stores(request: Request) -> tuple[Repository, ScalingStore]:
    return request.app.state.repo, request.app.state.scaling


def _status(name: str, rule: ScaleRuleRecord | None) -> AutoscaleStatus:
    if rule is None:
        return AutoscaleStatus(service=name)
    stored = AutoscaleRule.model_validate(
        {
            "Min": rule.min_instances,
            "Max": rule.max_instances,
            "Metric": rule.metric,
            "Target": rule.target,
        }
    )
    return AutoscaleStatus(service=name, rule=stored)


@router.get("/{name}/autoscale", response_model=AutoscaleStatus, response_model_by_alias=True)
def get_autoscale(request: Request, name: ServiceName) -> AutoscaleStatus:
    repo, scaling = _stores(request)
    repo.get_service(name)
    return _status(name, scaling.rule(name))


@router.put("/{name}/autoscale", response_model=AutoscaleStatus, response_model_by_alias=True)
def set_autoscale(request: Request, name: ServiceName, rule: AutoscaleRule) -> AutoscaleStatus:
    """Scale NAME between ``Min`` and ``Max`` instances to keep ``Metric`` (qps, cpu or
    queue) per instance about ``Target``."""
    _, scaling = _stores(request)
    record = scaling.set_rule(
        name,
        min_instances=rule.min,
        max_instances=rule.max,
        metric=rule.metric,
        target=rule.target,
        at=time.time(),
    )
    scaling.add_event(
        name,
        "Autoscale",
        f"autoscaling on: {rule.min} to {rule.max} instances, {rule.metric} "
        f"{rule.target:g} per instance",
    )
    # A rule with Min 0 changes the route table (the gateway holds calls for such a service):
    # publish it now rather than at the next tick.
    request.app.state.poke()
    return _status(name, record)


@router.delete("/{name}/autoscale", response_model=AutoscaleStatus, response_model_by_alias=True)
def delete_autoscale(request: Request, name: ServiceName) -> AutoscaleStatus:
    """Autoscaling off: the instance count stays where it is."""
    repo, scaling = _stores(request)
    repo.get_service(name)
    if scaling.delete_rule(name):
        scaling.add_event(name, "Autoscale", "autoscaling off")
        request.app.state.poke()
    return _status(name, None)


@router.get("/{name}/events", response_model=list[Event], response_model_by_alias=True)
def events(
    request: Request, name: ServiceName, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[Event]:
    """The service's latest events, oldest first."""
    repo, scaling = _stores(request)
    repo.get_service(name)
    return [Event(time=e.time, kind=e.kind, message=e.message) for e in scaling.events(name, limit)]


# Outside /api/v1: the gateway calls it with the installation's internal token, not a key.
internal = APIRouter(responses=ERROR_RESPONSES)


@internal.post(WAKE_PATH + "{name}")
def wake(request: Request, name: ServiceName) -> dict[str, bool]:
    """A call is waiting for ``name``, which has no instance: start one if it scales from
    zero. ``Waking`` false means it does not, and the call should not wait."""
    settings: ControllerSettings = request.app.state.settings
    presented = request.headers.get(INTERNAL_TOKEN_HEADER, "")
    if not hmac.compare_digest(presented.encode(), settings.internal_token().encode()):
        raise Unauthorized(f"{INTERNAL_TOKEN_HEADER}: not the installation's internal token")
    autoscaler: Autoscaler = request.app.state.autoscaler
    waking = autoscaler.wake(name)
    if waking:
        request.app.state.poke()
    return {"Waking": waking}
