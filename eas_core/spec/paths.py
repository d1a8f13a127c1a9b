"""The paths and header names the installation's parts use between them, spelled once.

Beside the service API (``/api/predict/{service}``) and the control API (``/api/v1/…``):

    /api/builtin/ping | ready | metrics   every gateway and instance: alive, ready, Prometheus
    PUT /api/internal/routes              controller → gateway: the route table, with the
                                          installation's internal token in its own header
    GET /api/internal/shadow/{service}    controller → gateway: the service's mirrored pairs and
                                          counters (same internal token)
    POST /api/internal/wake/{service}     gateway → controller: start an instance of a service
                                          scaled to zero (same internal token)
    x-eas-date, x-eas-nonce,              what a signed control-API call carries besides its
    x-eas-content-sha256                  Authorization (eas_core.auth.keys)
    x-eas-stuck-seconds                   on an instance's 503 readiness answer: for how long
                                          every worker thread has been stuck
"""

from __future__ import annotations

BUILTIN_PREFIX = "/api/builtin/"
PING_PATH = BUILTIN_PREFIX + "ping"
READY_PATH = BUILTIN_PREFIX + "ready"
METRICS_PATH = BUILTIN_PREFIX + "metrics"

ROUTES_PATH = "/api/internal/routes"
# gateway → controller: a call arrived for a service scaled to zero; start one instance.
WAKE_PATH = "/api/internal/wake/"
INTERNAL_TOKEN_HEADER = "x-eas-internal-token"
# controller → gateway: what the gateway recorded of a service's shadow traffic.
SHADOW_PATH = "/api/internal/shadow/"

DATE_HEADER = "x-eas-date"
NONCE_HEADER = "x-eas-nonce"
CONTENT_SHA256_HEADER = "x-eas-content-sha256"

# The backend restarts an instance stuck for longer than its bound (hung_restart_seconds).
STUCK_SECONDS_HEADER = "x-eas-stuck-seconds"
