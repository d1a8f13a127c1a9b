"""What a service is asked to be: the desired state the reconciler works towards."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ServiceState(StrEnum):
    """Stored as these very strings, so databases written before the enum read unchanged."""

    RUNNING = "running"
    STOPPED = "stopped"
    DELETING = "deleting"  # its route is gone; the record goes once no instance is left
    # Deleted while a released related service still serves its endpoint: the name and
    # token stay, the instances are gone.
    RETIRED = "retired"


@dataclass(frozen=True)
class RollbackPoint:
    """Where a roll in progress goes back to if the new instances fail: what served before."""

    version: int
    revision: int
    document: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "revision": self.revision, "document": self.document}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RollbackPoint:
        return cls(
            version=int(data["version"]),
            revision=int(data["revision"]),
            document=dict(data["document"]),
        )
