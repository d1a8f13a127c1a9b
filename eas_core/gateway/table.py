"""The gateway's copy of the route table, compiled for lookups on the predict path."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from eas_core.http.balancer import WeightedRoundRobin
from eas_core.spec.discovery import discovery_document
from eas_core.spec.routes import RouteTable, ServiceRoute, Upstream

log = logging.getLogger(__name__)


class CompiledRoute:
    """One service name as callers see it: its token, where its traffic goes."""

    __slots__ = ("balancer", "name", "released_into", "route", "split", "token")

    def __init__(self, route: ServiceRoute) -> None:
        self.route = route
        self.name = route.name
        self.token = route.token
        self.released_into = route.released_into
        self.balancer = WeightedRoundRobin([(u, u.weight) for u in route.upstreams])
        self.split: WeightedRoundRobin[str] | None = None
        if route.traffic:
            self.split = WeightedRoundRobin([(t.service, t.weight) for t in route.traffic])


class RouteTableHolder:
    def __init__(self, persist_path: Path | None = None) -> None:
        self.table = RouteTable()
        self.routes: dict[str, CompiledRoute] = {}
        self.persist_path = persist_path
        self.loaded = False

    def load_persisted(self) -> None:
        if self.persist_path is None or not self.persist_path.exists():
            return
        try:
            table = RouteTable.model_validate_json(self.persist_path.read_bytes())
        except ValueError as exc:
            log.warning("ignoring unreadable route table %s: %s", self.persist_path, exc)
            return
        self.install(table, persist=False)

    def install(self, table: RouteTable, *, persist: bool = True) -> bool:
        """Take a pushed table unless it is older than the one we hold."""
        if self.loaded and table.version < self.table.version:
            return False
        self.routes = {name: CompiledRoute(route) for name, route in table.services.items()}
        self.table = table
        self.loaded = True
        if persist and self.persist_path is not None:
            self.persist_path.parent.mkdir(parents=True, exist_ok=True)
            # Gateways of one installation on one machine share the data directory: each
            # writes its own temporary file, so two replacing the table at once cannot
            # move each other's half-written file into place.
            tmp = self.persist_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(table.model_dump_json())
            os.replace(tmp, self.persist_path)
        return True

    def get(self, name: str) -> CompiledRoute | None:
        return self.routes.get(name)

    def discovery(self, name: str) -> dict[str, object] | None:
        """Discovery document: every ready instance behind ``name``, split weights applied."""
        route = self.routes.get(name)
        if route is None or route.released_into is not None:
            return None
        upstreams: list[Upstream] = []
        if not route.route.traffic:
            upstreams = list(route.route.upstreams)
        else:
            for share in route.route.traffic:
                target = self.routes.get(share.service)
                if target is None or share.weight == 0 or not target.route.upstreams:
                    continue
                per_instance = max(1, round(share.weight * 100 / len(target.route.upstreams)))
                upstreams += [
                    u.model_copy(update={"weight": per_instance}) for u in target.route.upstreams
                ]
        return discovery_document(name, route.route.correlative, upstreams)

    def to_json(self) -> bytes:
        return json.dumps({"version": self.table.version, "services": len(self.routes)}).encode()
