"""What a standby controller answers while another controller holds the leader lease.

A standby has built nothing that acts: no backend (so it adopts, places and stops no
instance), no reconciler, no publisher. It answers ``/api/v1/health`` with 200 and
``"role": "standby"`` (the process is alive and ready to take over), ``/api/v1/leader``
with 503, and every other path with 503 and a message naming the leader's address. The 503
comes before anything is read or done, so a load balancer may send any call, a write
included, on to the next controller (nginx: ``proxy_next_upstream error timeout http_503
non_idempotent``); one that probes ``/api/v1/leader`` sends nothing to a standby at all.

It polls the lease meanwhile; once the lease is taken the standby server stops and the
process goes on to build and run the whole controller on the same port.
"""

from __future__ import annotations

import logging
import os
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from eas_core import __version__
from eas_core.config import ControllerSettings
from eas_core.controller.store.lease import LeaderLease
from eas_core.spec.control import Health

log = logging.getLogger(__name__)

HEALTH_PATH = "/api/v1/health"
LEADER_PATH = "/api/v1/leader"


def standby_app(lease: LeaderLease) -> Starlette:
    def leader_note() -> str:
        leader = lease.leader()
        return f"the leader is {leader}" if leader else "no leader has announced itself yet"

    async def health(request: Request) -> JSONResponse:
        answer = Health(
            status="ok", version=__version__, pid=os.getpid(), role="standby", leader=lease.leader()
        )
        return JSONResponse(answer.model_dump(mode="json", by_alias=True))

    async def elsewhere(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "code": "ServiceUnavailable",
                "message": f"this controller is a standby and serves no calls; {leader_note()}",
                "leader": lease.leader(),
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route(HEALTH_PATH, health, methods=["GET"]),
            Route("/{path:path}", elsewhere, methods=methods),
        ]
    )


def wait_as_standby(settings: ControllerSettings, lease: LeaderLease) -> bool:
    """Serve the standby answers until the lease is ours (True) or the process is asked to
    stop first (False)."""
    config = uvicorn.Config(
        standby_app(lease),
        host=settings.host,
        port=settings.controller_port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
    )
    server = uvicorn.Server(config)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(settings.lease_retry_seconds):
            if lease.try_acquire():
                log.warning("took the leader lease: this controller is now the leader")
                server.should_exit = True
                return

    log.warning(
        "standby: another controller holds the leader lease (%s); trying again every %gs",
        lease.leader() or "unknown address",
        settings.lease_retry_seconds,
    )
    poller = threading.Thread(target=poll, name="lease", daemon=True)
    poller.start()
    server.run()
    stop.set()
    poller.join()
    return lease.held
