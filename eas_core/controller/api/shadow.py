"""/api/v1/services/{name}/shadow: mirror a share of a service's calls to another service, and
read what the gateways recorded of it (eas_core.gateway.shadow keeps the pairs; this asks
every gateway and sums)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from eas_core.config import ControllerSettings
from eas_core.controller.api.auth import authenticated
from eas_core.controller.api.errors import ERROR_RESPONSES
from eas_core.controller.api.services import ServiceName
from eas_core.controller.store import Repository, ScalingStore, ShadowSettingRecord, ShadowStore
from eas_core.errors import BadRequest
from eas_core.spec.paths import INTERNAL_TOKEN_HEADER, SHADOW_PATH
from eas_core.spec.shadow import ShadowRecord, ShadowReport, ShadowSetting

router = APIRouter(
    prefix="/api/v1/services", dependencies=[Depends(authenticated)], responses=ERROR_RESPONSES
)

# Seconds a gateway is given to hand over its record; one that takes longer is listed under
# ``Unreachable`` rather than holding the report up.
GATEWAY_TIMEOUT = 3.0
MAX_PAIRS = 1000
_NONE = ShadowSettingRecord("", "", 0.0, 0)


def _stores(request: Request) -> tuple[Repository, ShadowStore, ScalingStore]:
    return request.app.state.repo, request.app.state.shadows, request.app.state.scaling


def _setting(record: ShadowSettingRecord | None) -> ShadowSetting | None:
    if record is None:
        return None
    return ShadowSetting(target=record.target, percent=record.percent)


@router.put("/{name}/shadow", response_model=ShadowReport, response_model_by_alias=True)
def set_shadow(request: Request, name: ServiceName, setting: ShadowSetting) -> ShadowReport:
    """Copy ``Percent`` % of the calls on NAME's endpoint to ``Target``'s instances once
    NAME's answer is sent; callers get NAME's answers only. Counters start afresh."""
    repo, shadows, scaling = _stores(request)
    if setting.target == name:
        raise BadRequest(f"Target: {name!r} cannot mirror its calls to itself")
    repo.get_service(name)
    record = shadows.set(
        name,
        target=setting.target,
        percent=setting.percent,
        since=max(time.time_ns() // 1000, (shadows.get(name) or _NONE).since + 1),
    )
    scaling.add_event(
        name, "Shadow", f"mirroring {setting.percent:g}% of calls to {setting.target}"
    )
    request.app.state.poke()  # publish the route table now, not at the next tick
    return ShadowReport(service=name, setting=_setting(record), since=record.since)


@router.delete("/{name}/shadow", response_model=ShadowReport, response_model_by_alias=True)
def delete_shadow(request: Request, name: ServiceName) -> ShadowReport:
    """Mirroring off; what the gateways recorded stays readable until it is set again."""
    repo, shadows, scaling = _stores(request)
    repo.get_service(name)
    if shadows.delete(name):
        scaling.add_event(name, "Shadow", "mirroring off")
        request.app.state.poke()
    return ShadowReport(service=name)


@router.get("/{name}/shadow", response_model=ShadowReport, response_model_by_alias=True)
async def get_shadow(
    request: Request,
    name: ServiceName,
    limit: Annotated[int, Query(ge=0, le=MAX_PAIRS)] = 100,
) -> ShadowReport:
    """The setting, the counters summed over every gateway since it was made, and the most
    recent ``limit`` pairs (live answer, candidate's answer), oldest first."""
    repo, shadows, _ = _stores(request)
    await run_in_threadpool(repo.get_service, name)
    record = await run_in_threadpool(shadows.get, name)
    gateways: list[str] = request.app.state.gateways
    settings: ControllerSettings = request.app.state.settings
    headers = {INTERNAL_TOKEN_HEADER: settings.internal_token()}
    async with httpx.AsyncClient(timeout=GATEWAY_TIMEOUT, headers=headers) as http:
        answers = await asyncio.gather(
            *(_ask(http, g, name, limit) for g in gateways), return_exceptions=False
        )
    report = ShadowReport(service=name, setting=_setting(record))
    records = [
        (g, a) for g, a in zip(gateways, answers, strict=True) if isinstance(a, ShadowRecord)
    ]
    report.unreachable = {
        g: a for g, a in zip(gateways, answers, strict=True) if isinstance(a, str)
    }
    # Count only what was recorded under the setting in force (or, with mirroring off, the
    # last one): a gateway that has not taken the newest route table yet has older counters.
    report.since = (
        record.since if record is not None else max((r.since for _, r in records), default=0)
    )
    if record is not None:
        report.applied = not report.unreachable and all(
            r.active and r.since == record.since for _, r in records
        )
    else:
        report.applied = not report.unreachable and not any(r.active for _, r in records)
    pairs = []
    for _, gateway_record in records:
        if gateway_record.since == report.since:
            report.counters.add(gateway_record.counters)
            pairs += gateway_record.pairs
    report.pairs = sorted(pairs, key=lambda p: p.time)[-limit:] if limit else []
    return report


async def _ask(http: httpx.AsyncClient, gateway: str, name: str, limit: int) -> ShadowRecord | str:
    try:
        answer = await http.get(f"{gateway}{SHADOW_PATH}{name}", params={"limit": limit})
        answer.raise_for_status()
        return ShadowRecord.model_validate_json(answer.content)
    except (httpx.HTTPError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
