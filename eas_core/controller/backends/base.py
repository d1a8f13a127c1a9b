"""The backend interface: the cut between deciding what should run and running it.

The reconciler decides; a backend carries out. Everything the controller knows of where and
how instances run goes through :class:`Backend` — nothing else reaches into a backend's
processes, files or cluster — so a new backend is one class that passes the contract suite
(tests/backends/contract.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Self

from eas_core.config import ControllerSettings
from eas_core.spec.status import InstanceStatus

# The resource group of a node nobody assigned to one (SPEC: `metadata.resource`).
DEFAULT_RESOURCE_GROUP = "public"


@dataclass(frozen=True)
class InstanceSpec:
    """Everything a backend needs to start one instance of one service version. Nothing in it
    names a path on the controller's disk: the node that runs it fetches its artefacts by URI
    into its own store and cache (eas_core.runtime.boot)."""

    id: str
    service: str
    version: int
    revision: int
    boot: dict[str, Any]  # eas_core.spec.instance.BootSpec as JSON
    env: dict[str, str]  # runtime settings (EAS_*)
    cpu: float
    memory_mb: int
    gpu: int
    # The resource group (`metadata.resource`) whose nodes may run it.
    group: str = DEFAULT_RESOURCE_GROUP


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
    # The GPU indices it holds (its CUDA_VISIBLE_DEVICES); empty on no GPU.
    gpus: tuple[int, ...] = ()

    @property
    def is_ready(self) -> bool:
        return self.status == InstanceStatus.RUNNING and self.answering


@dataclass(frozen=True)
class NodeInfo:
    """One node: its capacity, what placed instances use of it, and its resource group."""

    name: str
    ip: str
    cpu: float
    memory_mb: int
    gpu: int
    used_cpu: float = 0
    used_memory_mb: int = 0
    used_gpu: int = 0
    group: str = DEFAULT_RESOURCE_GROUP
    labels: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    """Where instances run. The controller uses one, chosen by name (``EAS_BACKEND``, see
    :mod:`eas_core.controller.backends.registry`), through these calls only.

    Lifecycle, in the order the controller goes through it:

    1. ``from_settings(settings)`` builds it from the controller's settings. Instances started
       by an earlier controller are adopted here, not restarted: instances belong to the
       installation, and outlive the controller process.
    2. Every reconciler tick calls ``observe()``: what runs, with its status, address, restart
       count and the reason of its last trouble. ``observe`` is also where a backend
       supervises (restarts what died, with back-off; starts what waited for room), so it is
       called often — every ``reconcile_interval`` seconds.
    3. The tick then calls ``place(spec)`` for each instance to start and ``stop(id)`` for each
       to remove. Both must be safe to repeat (a controller that restarts mid-way repeats
       them): placing an id that exists, or stopping one that is gone or going, does
       nothing. ``place`` returns at once; an instance that does not fit stays ``Pending``
       (with the reason) until it does. ``stop`` takes the instance out of what is ready at
       once (the gateway stops sending to it), lets it finish in-flight requests, then ends
       it; ``observe`` shows it ``Terminating`` until it is gone.
    4. From any thread, at any time (API requests, while a tick runs): ``nodes()`` — capacity
       and usage per node, each in its resource group; the resource groups that exist are the
       groups nodes() reports — and ``logs(instance_id, tail)``, the last lines an instance
       wrote (an empty list for an instance that wrote nothing or is unknown).
    5. ``shutdown(stop_instances=False)`` when the controller stops: the instances keep
       serving for the next controller. ``shutdown(stop_instances=True)`` when the whole
       installation stops: no instance may outlive it.
    """

    @classmethod
    def from_settings(cls, settings: ControllerSettings) -> Self: ...

    def place(self, spec: InstanceSpec) -> None: ...

    def stop(self, instance_id: str) -> None: ...

    def observe(self) -> list[ObservedInstance]: ...

    def nodes(self) -> list[NodeInfo]: ...

    def logs(self, instance_id: str, tail: int) -> list[str]: ...

    def shutdown(self, *, stop_instances: bool) -> None: ...
