"""Service and instance states (SPEC §3), spelled as `desc` and `w` show them."""

from __future__ import annotations

from enum import StrEnum


class ServiceStatus(StrEnum):
    CREATING = "Creating"
    WAITING = "Waiting"
    RUNNING = "Running"
    UPDATING = "Updating"
    STOPPED = "Stopped"
    FAILED = "Failed"
    DELETING = "Deleting"


class InstanceStatus(StrEnum):
    PENDING = "Pending"
    STARTING = "Starting"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class ResourceGroupStatus(StrEnum):
    READY = "ResourceReady"
    # Created, but no node has joined it yet: services placed there wait Pending.
    NO_NODE = "ResourcePending"


# Platform status codes of the data plane (SPEC §5).
OK = 200
BAD_REQUEST = 400
UNAUTHORIZED = 401
NOT_FOUND = 404
REQUEST_TIMEOUT = 408
QUEUE_FULL = 450
SERVICE_UNAVAILABLE = 503
