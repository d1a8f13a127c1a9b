"""The service-discovery document read by direct-connection clients (SPEC §5)."""

from __future__ import annotations

from typing import Any

from eas_core.spec.routes import Upstream


def discovery_document(
    service: str, correlative: list[str], upstreams: list[Upstream]
) -> dict[str, Any]:
    app = service.replace("_", "-")
    return {
        "correlative": correlative or [service],
        "endpoints": {
            "items": [
                {"app": app, "ip": u.host, "port": u.port, "weight": u.weight} for u in upstreams
            ]
        },
    }
