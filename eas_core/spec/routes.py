"""The route table: what the controller pushes and every gateway serves from memory.

A gateway never reads the database; this value is all it knows. ``version`` grows with every
change so a gateway can ignore a stale push.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from eas_core.spec.shadow import ShadowRoute


class Upstream(BaseModel):
    """One ready instance of a service."""

    instance: str
    host: str
    port: int
    weight: int = 100
    version: int = 0


class TrafficShare(BaseModel):
    """Blue-green: this share of the endpoint's traffic goes to ``service``'s instances."""

    service: str
    weight: int = Field(ge=0, le=100)


class ServiceRoute(BaseModel):
    name: str
    token: str | None = None  # None: open service, no authentication
    upstreams: list[Upstream] = []
    # Empty: all traffic to this service's own upstreams. Otherwise split by weight.
    traffic: list[TrafficShare] = []
    # A related service released into another one no longer answers on its own name.
    released_into: str | None = None
    # Services listed together on the discovery endpoint (`correlative`).
    correlative: list[str] = []
    # Scales from zero (autoscaling with --min 0): with no ready instance, the gateway holds
    # calls and asks the controller to start one, instead of answering 503 at once.
    wakes: bool = False
    # Shadow traffic: a share of this endpoint's calls is copied to another service.
    shadow: ShadowRoute | None = None


class RouteTable(BaseModel):
    version: int = 0
    services: dict[str, ServiceRoute] = {}
