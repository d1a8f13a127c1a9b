"""The controller process: the composition root. Everything is wired here from one settings
object — store, artefact store, backend, reconciler, publisher, API — and nowhere else."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psutil
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from eas_core import __version__
from eas_core.artefacts import ArtefactStore
from eas_core.auth.keys import generate_access_key
from eas_core.config import ControllerSettings
from eas_core.controller.api import artefacts, services
from eas_core.controller.backends.local import LocalBackend
from eas_core.controller.publisher import Publisher, build_routes
from eas_core.controller.reconciler import Reconciler
from eas_core.controller.services import Services
from eas_core.controller.store import Repository
from eas_core.errors import EASError

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"


def ensure_first_access_key(settings: ControllerSettings, repo: Repository) -> None:
    """At the first start, create the operator's access key pair and say where it is."""
    path = settings.data_dir / CREDENTIALS_FILE
    if repo.count_access_keys():
        return
    key = generate_access_key()
    repo.add_access_key(key.id, key.secret)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "AccessKeyId": key.id,
                "AccessKeySecret": key.secret,
                "Endpoint": settings.controller_url,
            },
            f,
            indent=2,
        )
    log.warning("created the first access key; its id and secret are in %s", path)


def build_app(settings: ControllerSettings) -> FastAPI:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    repo = Repository(settings.database)
    ensure_first_access_key(settings, repo)
    store = ArtefactStore(settings.data_dir / "artefacts")
    backend = LocalBackend(
        settings.data_dir,
        host=settings.host,
        cpu=settings.node_cpu or float(os.cpu_count() or 1),
        memory_mb=settings.node_memory_mb or psutil.virtual_memory().total // (1024 * 1024),
        gpu=settings.node_gpu,
        drain_seconds=settings.drain_seconds,
        backoff_initial=settings.restart_backoff_initial,
        backoff_max=settings.restart_backoff_max,
        hung_restart_seconds=settings.hung_restart_seconds,
    )
    publisher = Publisher([settings.gateway_url], settings.internal_token())
    reconciler: Reconciler

    def observed() -> list[Any]:
        return reconciler.snapshot

    operations = Services(
        settings,
        repo,
        store,
        nodes=backend.nodes,
        observed=observed,
        poke=lambda: reconciler.poke(),
    )

    def after_tick(snapshot: list[Any]) -> None:
        operations.check_rolls(snapshot)
        operations.collect_deleted(snapshot)
        live = [s for s in repo.list_services() if s.state != "deleting"]
        publisher.publish(build_routes(live, snapshot))

    reconciler = Reconciler(
        backend,
        operations.desired,
        operations.instance_spec,
        after_tick,
        settings.reconcile_interval,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reconciler.tick()  # adopt what runs and publish before answering anything
        reconciler.start()
        yield
        reconciler.stop()
        backend.shutdown(stop_instances=settings.stop_instances_on_exit)
        publisher.close()

    app = FastAPI(title="OpenEAS control API", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.repo = repo
    app.state.store = store
    app.state.backend = backend
    app.state.services = operations
    app.include_router(services.router)
    app.include_router(artefacts.router)

    @app.exception_handler(EASError)
    async def eas_error(request: Request, exc: EASError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = ("body", "query", "path")
        fields = [
            f"{'.'.join(str(p) for p in e['loc'] if p not in where)}: {e['msg']}"
            for e in exc.errors()
        ]
        return JSONResponse({"code": "BadRequest", "message": "; ".join(fields)}, status_code=400)

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "pid": os.getpid()}

    @app.get("/api/v1/resources")
    def resources() -> list[dict[str, Any]]:
        nodes = backend.nodes()
        return [
            {
                "ResourceName": "public",
                "InstanceCount": len(nodes),
                "CpuCount": sum(n.cpu for n in nodes),
                "GpuCount": sum(n.gpu for n in nodes),
                "Status": "ResourceReady",
                "Nodes": [n.__dict__ for n in nodes],
            }
        ]

    return app


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(levelname)s] %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = ControllerSettings()
    app = build_app(settings)
    # uvicorn installs its own SIGINT/SIGTERM handlers and runs the lifespan's shutdown.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.controller_port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
