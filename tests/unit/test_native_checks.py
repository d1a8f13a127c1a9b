"""Create-time checks of C/C++ and Java processors: supported kinds, and the operator's
policy keeping native code out of the shared `public` resource group."""

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
    NodeInfo("b", "127.0.0.2", cpu=8, memory_mb=8192, gpu=0, group="native"),
]
POLICY = SourcePolicy(
    local_roots=("/",), url_hosts=("*",), data_dir="/nonexistent", own_ports=frozenset()
)


def description(kind: str, group: str = "public") -> Any:
    document: dict[str, Any] = {
        "name": "svc",
        "processor_type": kind,
        "processor_path": "/tmp/pkg",
        "metadata": {"instance": 1, "cpu": 1, "memory": 256, "resource": group},
    }
    if kind == "java":
        document["processor_mainclass"] = "com.example.Main"
    else:
        document["processor_entry"] = "libprocessor.so" if kind == "cpp" else "app.py"
    return parse_description(document)


@pytest.mark.parametrize("kind", ["python", "cpp", "java"])
def test_every_custom_kind_is_served(kind: str) -> None:
    Checks(lambda: NODES, POLICY).check(description(kind))


@pytest.mark.parametrize("kind", ["cpp", "java"])
def test_native_processors_can_be_kept_out_of_public(kind: str) -> None:
    checks = Checks(lambda: NODES, POLICY, native_in_public=False)
    with pytest.raises(InvalidDescription) as refused:
        checks.check(description(kind))
    message = str(refused.value)
    assert f"processor_type: {kind} processors may not run in the public resource group" in message
    assert "EAS_NATIVE_PROCESSORS_IN_PUBLIC" in message
    checks.check(description(kind, group="native"))  # a dedicated group is fine
    checks.check(description("python"))  # Python processors are not affected
