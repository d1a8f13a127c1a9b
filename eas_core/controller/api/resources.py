"""/api/v1/resources: the resource groups instances are placed in, and their nodes.

A group exists when it was created (`eascmd resource create`), when a node carries it (Ray:
the custom resource ``group:NAME``; local: ``EAS_NODE_RESOURCE_GROUP``), or when it is
``public``. Its nodes and their usage are observed from the backend, never stored."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from fastapi import APIRouter, Depends, Request

from eas_core.controller.api.auth import authenticated
from eas_core.controller.api.errors import ERROR_RESPONSES
from eas_core.controller.backends.base import DEFAULT_RESOURCE_GROUP, Backend, NodeInfo
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import GroupRecord, GroupStore, Repository, ServiceRecord
from eas_core.errors import BadRequest, Conflict, NotFound
from eas_core.spec.control import Node, ResourceGroup, ResourceGroupDetail, ResourceGroupRequest
from eas_core.spec.status import ResourceGroupStatus

router = APIRouter(
    prefix="/api/v1/resources", dependencies=[Depends(authenticated)], responses=ERROR_RESPONSES
)


def _parts(request: Request) -> tuple[Backend, GroupStore, Repository, Callable[[], Snapshot]]:
    state = request.app.state
    return state.backend, state.groups, state.repo, state.snapshot


@router.get("")
def resources(request: Request) -> list[ResourceGroup]:
    """`eascmd resource ls`: every group, created or carried by a node, and `public`."""
    backend, groups, _, snapshot = _parts(request)
    return resource_groups(backend.nodes(), groups.all(), snapshot())


@router.post("")
def create_resource(request: Request, body: ResourceGroupRequest) -> ResourceGroup:
    """`eascmd resource create`: a group services may name before any node has joined it."""
    backend, groups, _, snapshot = _parts(request)
    nodes = backend.nodes()
    if body.name == DEFAULT_RESOURCE_GROUP:
        raise Conflict(f"Name: resource group {DEFAULT_RESOURCE_GROUP!r} always exists")
    groups.create(body.name, description=body.description, labels=body.labels)
    return _one(body.name, resource_groups(nodes, groups.all(), snapshot()))


@router.get("/{name}")
def describe_resource(request: Request, name: str) -> ResourceGroupDetail:
    """`eascmd resource desc`: the group, its nodes, and the services placed in it."""
    backend, groups, repo, snapshot = _parts(request)
    seen = snapshot()
    group = _one(name, resource_groups(backend.nodes(), groups.all(), seen))
    services = [s.name for s in repo.list_services() if service_group(s) == name]
    names = set(services)
    placed = sum(1 for o in seen.instances if o.service in names)
    return ResourceGroupDetail(
        **group.model_dump(), services=services, service_instance_count=placed
    )


@router.delete("/{name}")
def delete_resource(request: Request, name: str) -> ResourceGroup:
    """`eascmd resource delete`: refused for `public` and while a service names the group.
    Answers the group as it was. Nodes that still carry its name keep it listed."""
    backend, groups, repo, snapshot = _parts(request)
    if name == DEFAULT_RESOURCE_GROUP:
        raise BadRequest(f"resource group {DEFAULT_RESOURCE_GROUP!r} cannot be deleted")
    users = sorted(s.name for s in repo.list_services() if service_group(s) == name)
    if users:
        raise Conflict(
            f"resource group {name!r} is used by service(s) {', '.join(users)}: delete them or "
            f"move them to another group (metadata.resource) first"
        )
    was = _one(name, resource_groups(backend.nodes(), groups.all(), snapshot()))
    groups.delete(name)
    return was


def service_group(record: ServiceRecord) -> str:
    metadata = record.document.get("metadata") or {}
    return str(metadata.get("resource") or DEFAULT_RESOURCE_GROUP)


def known_groups(nodes: Iterable[NodeInfo], created: Iterable[str]) -> list[str]:
    """The groups a service may name: `public`, those created, those a node carries."""
    return sorted({DEFAULT_RESOURCE_GROUP, *created, *(n.group for n in nodes)})


def _one(name: str, groups: list[ResourceGroup]) -> ResourceGroup:
    for group in groups:
        if group.resource_name == name:
            return group
    have = ", ".join(g.resource_name for g in groups)
    raise NotFound(f"no resource group {name!r} (have: {have})")


def resource_groups(
    nodes: list[NodeInfo], created: dict[str, GroupRecord], seen: Snapshot
) -> list[ResourceGroup]:
    by_group: dict[str, list[NodeInfo]] = {name: [] for name in known_groups(nodes, created)}
    for node in nodes:
        by_group[node.group].append(node)
    # Instances the backend placed on each node (a Pending one has no node yet).
    on_node = Counter(o.node for o in seen.instances if o.node)
    answer = []
    for name, members in by_group.items():
        record = created.get(name)
        answer.append(
            ResourceGroup(
                resource_name=name,
                instance_count=len(members),
                cpu_count=sum(n.cpu for n in members),
                gpu_count=sum(n.gpu for n in members),
                status=ResourceGroupStatus.READY if members else ResourceGroupStatus.NO_NODE,
                message=_message(name, members),
                description=record.description if record else "",
                labels=record.labels if record else {},
                create_time=record.created_at if record else None,
                nodes=[_node(n, on_node[n.name]) for n in members],
            )
        )
    return answer


def _message(name: str, members: list[NodeInfo]) -> str:
    if members:
        return "Resource is ready"
    return (
        f"no node has joined resource group {name!r}: start a node in it (Ray: with the custom "
        f'resource "group:{name}"; local: EAS_NODE_RESOURCE_GROUP={name}); services placed '
        f"here wait Pending until then"
    )


def _node(n: NodeInfo, instances: int) -> Node:
    return Node(
        name=n.name,
        ip=n.ip,
        cpu=n.cpu,
        memory_mb=n.memory_mb,
        gpu=n.gpu,
        used_cpu=n.used_cpu,
        used_memory_mb=n.used_memory_mb,
        used_gpu=n.used_gpu,
        group=n.group,
        labels=n.labels,
        instances=instances,
    )
