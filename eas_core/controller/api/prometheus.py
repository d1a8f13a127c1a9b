"""/api/v1/prometheus/targets: Prometheus HTTP service discovery (``http_sd_configs``).

Prometheus cannot sign requests with an access key, so this one route is outside the signed
API and takes a bearer token instead: the installation's Prometheus token, created at the
first start in ``DATA_DIR/prometheus.token`` (mode 0600). It only lists where metrics are
served — no tokens, descriptions or keys.

Each instance is a target labelled ``service``, ``version`` and ``instance`` (its id), the
same labels its own series carry (scrape with ``honor_labels: true``); the gateway is the
target ``instance="gateway"``. Both have ``eas_role`` (``instance`` or ``gateway``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request

from eas_core.config import ControllerSettings
from eas_core.controller.api.errors import ERROR_RESPONSES
from eas_core.controller.reconciler import Snapshot
from eas_core.errors import Unauthorized
from eas_core.spec.paths import METRICS_PATH
from eas_core.spec.status import InstanceStatus

TARGETS_PATH = "/api/v1/prometheus/targets"

router = APIRouter(responses=ERROR_RESPONSES)


def targets(snapshot: Snapshot, gateway_urls: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for number, url in enumerate(gateway_urls, start=1):
        gateway = urlsplit(url)
        found.append(
            {
                "targets": [f"{gateway.hostname}:{gateway.port}"],
                "labels": {
                    "eas_role": "gateway",
                    # The first keeps the name it had when there was only ever one.
                    "instance": "gateway" if number == 1 else f"gateway-{number}",
                    "__metrics_path__": METRICS_PATH,
                },
            }
        )
    for instance in sorted(snapshot.instances, key=lambda i: i.id):
        if instance.status not in (InstanceStatus.STARTING, InstanceStatus.RUNNING):
            continue
        if not instance.port:
            continue
        found.append(
            {
                "targets": [f"{instance.host}:{instance.port}"],
                "labels": {
                    "eas_role": "instance",
                    "service": instance.service,
                    "version": str(instance.version),
                    "instance": instance.id,
                    "__metrics_path__": METRICS_PATH,
                },
            }
        )
    return found


@router.get(TARGETS_PATH)
def prometheus_targets(request: Request) -> list[dict[str, Any]]:
    """Every instance and every gateway as Prometheus targets. ``Authorization: Bearer`` with
    the installation's Prometheus token (``DATA_DIR/prometheus.token``)."""
    settings: ControllerSettings = request.app.state.settings
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    expected = settings.prometheus_token()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), expected):
        raise Unauthorized(
            "authorization: expected 'Bearer <token>' with the installation's Prometheus "
            "token (DATA_DIR/prometheus.token)"
        )
    latest: Callable[[], Snapshot] = request.app.state.snapshot
    return targets(latest(), settings.gateway_urls)
