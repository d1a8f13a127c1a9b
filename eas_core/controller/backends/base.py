"""The backend interface: the cut between deciding what should run and running it.

The reconciler decides; a backend carries out. ``place`` and ``stop`` must be safe to repeat
(a controller that restarts mid-way repeats them), and ``observe`` reports what really runs,
including instances started before the controller itself (it adopts them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from eas_core.spec.status import InstanceStatus


@dataclass(frozen=True)
class InstanceSpec:
    """Everything a backend needs to start one instance of one service version."""

    id: str
    service: str
    version: int
    revision: int
    boot: dict[str, Any]  # eas_core.runtime.boot.BootSpec as JSON
    env: dict[str, str]  # runtime settings (EAS_*)
    cpu: float
    memory_mb: int
    gpu: int


@dataclass(frozen=True)
class ObservedInstance:
    id: str
    service: str
    version: int
    revision: int
    status: InstanceStatus
    host: str
    port: int
    node: str
    restarts: int = 0
    started_at: datetime | None = None
    reason: str = ""
    pid: int | None = None
    # False while a Running instance cannot answer now (every worker stuck, or its readiness
    # probe unanswered): it leaves the route table until it answers again.
    answering: bool = True

    @property
    def is_ready(self) -> bool:
        return self.status == InstanceStatus.RUNNING and self.answering


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ip: str
    cpu: float
    memory_mb: int
    gpu: int
    used_cpu: float = 0
    used_memory_mb: int = 0
    used_gpu: int = 0
    labels: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    def place(self, spec: InstanceSpec) -> None: ...

    def stop(self, instance_id: str) -> None: ...

    def observe(self) -> list[ObservedInstance]: ...

    def nodes(self) -> list[NodeInfo]: ...

    def shutdown(self, *, stop_instances: bool) -> None: ...
