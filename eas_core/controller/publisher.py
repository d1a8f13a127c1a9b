"""The publisher: turn desired state + observed instances into a route table, push it.

``RoutePublishing`` is the reconciler's after-tick hook that does so with what each tick saw.

A new table (new ``version``) is pushed to every gateway as soon as its content changes, and
the current one again every few seconds, so a gateway that restarted catches up without the
controller knowing it restarted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence

import httpx

from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import (
    Repository,
    ServiceRecord,
    ServiceState,
    ShadowSettingRecord,
)
from eas_core.spec.paths import INTERNAL_TOKEN_HEADER, ROUTES_PATH
from eas_core.spec.routes import RouteTable, ServiceRoute, TrafficShare, Upstream
from eas_core.spec.shadow import ShadowRoute

log = logging.getLogger(__name__)

REPUSH_SECONDS = 3.0


def build_routes(
    services: Sequence[ServiceRecord],
    observed: Sequence[ObservedInstance],
    waking: Collection[str] = (),
    shadows: Mapping[str, ShadowSettingRecord] | None = None,
) -> dict[str, ServiceRoute]:
    """``waking``: the services that scale from zero (``ServiceRoute.wakes``); ``shadows``:
    the services whose calls are mirrored, by name (``ServiceRoute.shadow``)."""
    ready: dict[str, list[Upstream]] = {}
    for o in sorted(observed, key=lambda o: o.id):
        if o.is_ready:
            ready.setdefault(o.service, []).append(
                Upstream(instance=o.id, host=o.host, port=o.port, version=o.version)
            )
    related: dict[str, list[ServiceRecord]] = {}
    for s in services:
        if s.related_to:
            related.setdefault(s.related_to, []).append(s)
    routes: dict[str, ServiceRoute] = {}
    for s in services:
        try:
            routes[s.name] = _route(s, ready, related)
            if s.name in waking and s.is_running:
                routes[s.name].wakes = True
            shadow = (shadows or {}).get(s.name)
            if shadow is not None:
                routes[s.name].shadow = ShadowRoute(
                    target=shadow.target, percent=shadow.percent, since=shadow.since
                )
        except Exception:  # one unroutable service must not keep the others' routes stale
            log.exception("cannot build the route of service %s", s.name)
    return routes


def _route(
    s: ServiceRecord, ready: dict[str, list[Upstream]], related: dict[str, list[ServiceRecord]]
) -> ServiceRoute:
    upstreams = ready.get(s.name, []) if s.is_running else []
    traffic: list[TrafficShare] = []
    released = [r for r in related.get(s.name, []) if r.weight is not None]
    if released:
        share = sum(r.weight or 0 for r in released)
        # A retired original keeps its name and token; all its traffic goes to the others.
        own = 0 if s.state is ServiceState.RETIRED else max(100 - share, 0)
        traffic = [TrafficShare(service=s.name, weight=own)]
        traffic += [TrafficShare(service=r.name, weight=r.weight or 0) for r in released]
        if own == 0 and share == 0:
            traffic = []  # nobody is given traffic: answer 503 rather than guess
    return ServiceRoute(
        name=s.name,
        token=s.token,
        upstreams=upstreams,
        traffic=traffic,
        released_into=s.related_to if s.related_to and s.weight is not None else None,
        correlative=[s.name] + [r.name for r in related.get(s.name, [])],
    )


class Publisher:
    def __init__(self, gateways: list[str], internal_token: str) -> None:
        self.gateways = gateways
        self.headers = {INTERNAL_TOKEN_HEADER: internal_token}
        self.http = httpx.Client(timeout=2.0)
        self.table = RouteTable()
        self.pushed_at = 0.0
        self.unacknowledged: set[str] = set(gateways)

    def publish(self, routes: dict[str, ServiceRoute]) -> RouteTable:
        changed = routes != self.table.services
        if changed:
            # Microseconds since the epoch: grows across controller restarts too.
            version = max(time.time_ns() // 1000, self.table.version + 1)
            self.table = RouteTable(version=version, services=routes)
            self.unacknowledged = set(self.gateways)
        if changed or self.unacknowledged or time.monotonic() - self.pushed_at > REPUSH_SECONDS:
            self.push()
        return self.table

    def push(self) -> None:
        body = self.table.model_dump_json()
        self.pushed_at = time.monotonic()
        for gateway in self.gateways:
            try:
                answer = self.http.put(
                    f"{gateway}{ROUTES_PATH}",
                    content=body,
                    headers={**self.headers, "content-type": "application/json"},
                )
                answer.raise_for_status()
                self.unacknowledged.discard(gateway)
            except httpx.HTTPError as exc:
                self.unacknowledged.add(gateway)
                log.debug("gateway %s did not take the route table: %s", gateway, exc)

    def close(self) -> None:
        self.http.close()


class RoutePublishing:
    """After each tick: the routes of every service not being deleted, to every gateway."""

    def __init__(
        self,
        repo: Repository,
        publisher: Publisher,
        waking: Callable[[], Collection[str]] = frozenset,
        shadows: Callable[[], Mapping[str, ShadowSettingRecord]] = dict,
    ) -> None:
        self.repo = repo
        self.publisher = publisher
        self.waking = waking
        self.shadows = shadows

    def __call__(self, snapshot: Snapshot) -> None:
        live = [s for s in self.repo.list_services() if s.state is not ServiceState.DELETING]
        self.publisher.publish(
            build_routes(live, snapshot.instances, self.waking(), self.shadows())
        )
