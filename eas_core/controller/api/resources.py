"""/api/v1/resources: the resource groups instances are placed in, and their nodes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from eas_core.controller.api.auth import authenticated
from eas_core.controller.api.errors import ERROR_RESPONSES
from eas_core.controller.backends.base import Backend, NodeInfo
from eas_core.spec.control import Node, ResourceGroup
from eas_core.spec.status import ResourceGroupStatus

router = APIRouter(
    prefix="/api/v1/resources", dependencies=[Depends(authenticated)], responses=ERROR_RESPONSES
)


@router.get("")
def resources(request: Request) -> list[ResourceGroup]:
    """`eascmd resource ls`: the resource groups are the groups of the backend's nodes."""
    backend: Backend = request.app.state.backend
    return resource_groups(backend)


def resource_groups(backend: Backend) -> list[ResourceGroup]:
    groups: dict[str, list[NodeInfo]] = {}
    for node in backend.nodes():
        groups.setdefault(node.group, []).append(node)
    return [
        ResourceGroup(
            resource_name=group,
            instance_count=len(nodes),
            cpu_count=sum(n.cpu for n in nodes),
            gpu_count=sum(n.gpu for n in nodes),
            status=ResourceGroupStatus.READY,
            nodes=[
                Node(
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
                )
                for n in nodes
            ],
        )
        for group, nodes in sorted(groups.items())
    ]
