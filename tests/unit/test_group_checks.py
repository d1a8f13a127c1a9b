"""Create-time checks of `metadata.resource`: a group exists when it is `public`, was created
by name, or a node carries it; a created group with no node yet is accepted (its instances
wait Pending), while node sizes are still checked where the group has nodes."""

from __future__ import annotations

from typing import Any

import pytest

from eas_core.controller.backends.base import NodeInfo
from eas_core.controller.checks import Checks
from eas_core.controller.sources import SourcePolicy
from eas_core.errors import InvalidDescription
from eas_core.spec.service import parse_description

NODES = [
    NodeInfo("a", "127.0.0.1", cpu=8, memory_mb=8192, gpu=0, group="public"),
    NodeInfo("b", "127.0.0.2", cpu=2, memory_mb=4096, gpu=0, group="small"),
]
POLICY = SourcePolicy(
    local_roots=("/",), url_hosts=("*",), data_dir="/nonexistent", own_ports=frozenset()
)


def description(group: str, cpu: float = 1) -> Any:
    return parse_description(
        {
            "name": "svc",
            "processor": "pmml",
            "model_path": "/tmp/model.pmml",
            "metadata": {"instance": 1, "cpu": cpu, "memory": 256, "resource": group},
        }
    )


def checks(created: tuple[str, ...] = ()) -> Checks:
    return Checks(lambda: NODES, POLICY, created_groups=lambda: created)


def test_a_created_group_with_no_node_is_accepted() -> None:
    checks(("g2",)).check(description("g2", cpu=64))


def test_an_unknown_group_is_refused_listing_public_created_and_node_groups() -> None:
    with pytest.raises(InvalidDescription) as refused:
        checks(("g2",)).check(description("g9"))
    assert refused.value.errors == [
        "metadata.resource: no resource group 'g9' (have: g2, public, small)"
    ]


def test_a_group_known_by_its_nodes_still_has_their_sizes_checked() -> None:
    with pytest.raises(InvalidDescription, match="more than any node of group 'small' has"):
        checks().check(description("small", cpu=4))
    checks().check(description("small", cpu=2))
