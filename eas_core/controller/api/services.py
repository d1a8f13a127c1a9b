"""/api/v1/services: create, list, describe, modify, stop, start, delete, instances, versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from eas_core.controller.api.auth import authenticated
from eas_core.controller.api.errors import ERROR_RESPONSES
from eas_core.controller.backends.base import Backend
from eas_core.controller.operations import Operations
from eas_core.controller.store import ScalingStore
from eas_core.errors import BadRequest, InvalidDescription
from eas_core.spec.control import (
    Instance,
    Service,
    ServiceLogs,
    ServiceSummary,
    Version,
)
from eas_core.spec.limits import MAX_VERSION
from eas_core.spec.service import ServiceDescription, decode_document

router = APIRouter(
    prefix="/api/v1/services", dependencies=[Depends(authenticated)], responses=ERROR_RESPONSES
)

# Stored names are at most 63 characters; longer ones can name nothing, but a listing of
# rows written by older releases may show a few more, so paths take up to 128.
ServiceName = Annotated[str, Path(max_length=128)]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION)]


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The description's JSON schema with its ``$defs`` inlined, for the OpenAPI document."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


# The bodies are read raw (strict JSON, bounded), so the schema is declared by hand.
_DESCRIPTION = _inline(ServiceDescription.model_json_schema(by_alias=True))
_CHANGE = {k: v for k, v in _DESCRIPTION.items() if k != "required"}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _services(request: Request) -> Operations:
    services: Operations = request.app.state.services
    return services


async def _json_body(request: Request, what: str) -> Any:
    # The signature middleware has capped and checked the body already.
    return decode_document(await request.body(), what)


@router.post("", status_code=201, openapi_extra=_body(_DESCRIPTION))
async def create(request: Request, related: bool = False) -> Service:
    """Create a service from a description (SPEC §2); ``related=true`` is `create -r`."""
    services = _services(request)
    document = await _json_body(request, "description")
    record = await run_in_threadpool(services.create, document, related=related)
    return services.service(record)


@router.get("")
def list_services(request: Request) -> list[ServiceSummary]:
    services = _services(request)
    return [services.summary(r) for r in services.repo.list_services()]


@router.get("/{name}")
def describe(request: Request, name: ServiceName) -> Service:
    return _services(request).describe(name)


@router.put("/{name}", openapi_extra=_body(_CHANGE))
async def modify(request: Request, name: ServiceName) -> Service:
    """Change what the document names; a model or processor change makes a new version."""
    services = _services(request)
    change = await _json_body(request, "change")
    await run_in_threadpool(_refuse_manual_scaling_under_autoscale, request, name, change)
    record = await run_in_threadpool(services.modify, name, change)
    return services.service(record)


def _refuse_manual_scaling_under_autoscale(request: Request, name: str, change: Any) -> None:
    """While an autoscaling rule manages NAME, its instance count is the rule's: a manual count
    would be undone at the next decision, so it is refused, saying what to change instead."""
    metadata = change.get("metadata") if isinstance(change, dict) else None
    if not isinstance(metadata, dict) or "instance" not in metadata:
        return
    scaling: ScalingStore = request.app.state.scaling
    rule = scaling.rule(name)
    if (
        rule is None
        or metadata["instance"] == _services(request).repo.get_service(name).instance_count
    ):
        return
    raise InvalidDescription(
        [
            f"metadata.instance: autoscaling keeps {name} between {rule.min_instances} and "
            f"{rule.max_instances} instances; change the range (eascmd autoscale {name} --min "
            f"N --max M) or switch it off (eascmd autoscale {name} --off) first"
        ]
    )


class VersionSwitch(BaseModel):
    version: int = Field(ge=1, le=MAX_VERSION)
    # False: the resource and capacity settings stay as they are now (spec.RESOURCE_SETTINGS).
    with_resources: bool = False


class Release(BaseModel):
    weight: int = Field(ge=0, le=100)


@router.post("/{name}/version")
def switch_version(request: Request, name: ServiceName, switch: VersionSwitch) -> Service:
    """Make a stored version current (rollback), rolling instances over to it."""
    services = _services(request)
    return services.service(
        services.switch_version(name, switch.version, with_resources=switch.with_resources)
    )


@router.post("/{name}/release")
def release(request: Request, name: ServiceName, body: Release) -> Service:
    """Send ``weight``% of the original endpoint's traffic to this related service."""
    services = _services(request)
    return services.service(services.release(name, body.weight))


@router.post("/{name}/stop")
def stop(request: Request, name: ServiceName) -> ServiceSummary:
    services = _services(request)
    return services.summary(services.stop(name))


@router.post("/{name}/start")
def start(request: Request, name: ServiceName) -> ServiceSummary:
    services = _services(request)
    return services.summary(services.start(name))


@router.delete("/{name}")
def delete(request: Request, name: ServiceName) -> ServiceSummary:
    services = _services(request)
    return services.summary(services.delete(name))


@router.get("/{name}/instances")
def instances(request: Request, name: ServiceName) -> list[Instance]:
    return _services(request).workers(name)


@router.get("/{name}/versions")
def versions(request: Request, name: ServiceName) -> list[Version]:
    return _services(request).versions(name)


@router.get("/{name}/versions/{version}")
def version(request: Request, name: ServiceName, version: VersionNumber) -> Version:
    return _services(request).version(name, version)


@router.get("/{name}/logs")
def logs(
    request: Request,
    name: ServiceName,
    instance: Annotated[str | None, Query(max_length=256)] = None,
    tail: Annotated[int, Query(ge=0, le=100_000)] = 200,
) -> ServiceLogs:
    services = _services(request)
    workers = services.workers(name)
    chosen = [w.instance_name for w in workers if instance in (None, w.instance_name)]
    if instance is not None and not chosen:
        raise BadRequest(f"instance: {instance!r} is not an instance of {name!r}")
    backend: Backend = request.app.state.backend
    out = {instance_id: backend.logs(instance_id, tail) for instance_id in chosen}
    return ServiceLogs(service_name=name, logs=out)
