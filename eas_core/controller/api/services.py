"""/api/v1/services: create, list, describe, modify, stop, start, delete, instances, versions."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from eas_core.controller.api.auth import authenticate
from eas_core.controller.services import Services
from eas_core.errors import BadRequest, InvalidDescription

router = APIRouter(prefix="/api/v1/services", dependencies=[Depends(authenticate)])


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidDescription([f"description: not valid JSON ({exc})"]) from None


@router.post("", status_code=201)
async def create(request: Request, related: bool = False) -> dict[str, Any]:
    """Create a service from a description (SPEC §2); ``related=true`` is `create -r`."""
    services = _services(request)
    document = await _json_body(request)
    record = await run_in_threadpool(services.create, document, related=related)
    return services.summary(record, full=True)


@router.get("")
def list_services(request: Request) -> list[dict[str, Any]]:
    services = _services(request)
    return [services.summary(r) for r in services.repo.list_services()]


@router.get("/{name}")
def describe(request: Request, name: str) -> dict[str, Any]:
    return _services(request).describe(name)


@router.put("/{name}")
async def modify(request: Request, name: str) -> dict[str, Any]:
    """Change what the document names; a model or processor change makes a new version."""
    services = _services(request)
    change = await _json_body(request)
    record = await run_in_threadpool(services.modify, name, change)
    return services.summary(record, full=True)


class VersionSwitch(BaseModel):
    version: int = Field(ge=1)


class Release(BaseModel):
    weight: int = Field(ge=0, le=100)


@router.post("/{name}/version")
def switch_version(request: Request, name: str, switch: VersionSwitch) -> dict[str, Any]:
    """Make a stored version current (rollback), rolling instances over to it."""
    services = _services(request)
    return services.summary(services.switch_version(name, switch.version), full=True)


@router.post("/{name}/release")
def release(request: Request, name: str, body: Release) -> dict[str, Any]:
    """Send ``weight``% of the original endpoint's traffic to this related service."""
    services = _services(request)
    return services.summary(services.release(name, body.weight), full=True)


@router.post("/{name}/stop")
def stop(request: Request, name: str) -> dict[str, Any]:
    services = _services(request)
    return services.summary(services.stop(name))


@router.post("/{name}/start")
def start(request: Request, name: str) -> dict[str, Any]:
    services = _services(request)
    return services.summary(services.start(name))


@router.delete("/{name}")
def delete(request: Request, name: str) -> dict[str, Any]:
    services = _services(request)
    return services.summary(services.delete(name))


@router.get("/{name}/instances")
def instances(request: Request, name: str) -> list[dict[str, Any]]:
    return _services(request).workers(name)


@router.get("/{name}/versions")
def versions(request: Request, name: str) -> list[dict[str, Any]]:
    services = _services(request)
    services.repo.get_service(name)
    return [
        {
            "Version": v.version,
            "CreateTime": v.created_at.replace(tzinfo=UTC).isoformat(timespec="seconds"),
            "ServiceConfig": v.document,
            "Artefacts": v.artefacts,
        }
        for v in services.repo.list_versions(name)
    ]


@router.get("/{name}/versions/{version}")
def version(request: Request, name: str, version: int) -> dict[str, Any]:
    v = _services(request).repo.get_version(name, version)
    return {
        "Version": v.version,
        "CreateTime": v.created_at.replace(tzinfo=UTC).isoformat(timespec="seconds"),
        "ServiceConfig": v.document,
        "Artefacts": v.artefacts,
    }


@router.get("/{name}/logs")
def logs(
    request: Request, name: str, instance: str | None = None, tail: int = 200
) -> dict[str, Any]:
    services = _services(request)
    workers = services.workers(name)
    chosen = [w["InstanceName"] for w in workers if instance in (None, w["InstanceName"])]
    if instance is not None and not chosen:
        raise BadRequest(f"instance: {instance!r} is not an instance of {name!r}")
    backend = request.app.state.backend
    out: dict[str, Any] = {}
    for instance_id in chosen:
        path = backend.log_path(instance_id)
        lines = path.read_text(errors="replace").splitlines()[-tail:] if path.exists() else []
        out[instance_id] = lines
    return {"ServiceName": name, "Logs": out}
