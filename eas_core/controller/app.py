"""The controller process: the composition root. Everything is wired here from one settings
object — store, artefact store, backend, reconciler, publisher, API — and nowhere else."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import uvicorn
from fastapi import FastAPI

from eas_core import __version__
from eas_core.artefacts import ArtefactStore
from eas_core.auth.keys import generate_access_key
from eas_core.config import ControllerSettings
from eas_core.controller.api import artefacts, resources, services
from eas_core.controller.api.auth import ReplayGuard, SignedRequests
from eas_core.controller.api.errors import install_error_handlers
from eas_core.controller.backends.local import LocalBackend
from eas_core.controller.publisher import Publisher, build_routes
from eas_core.controller.reconciler import Reconciler
from eas_core.controller.services import Services
from eas_core.controller.sources import SourcePolicy
from eas_core.controller.store import Repository
from eas_core.spec.control import Health

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"


def secure_directory(path: Path) -> None:
    """The data directory holds the access-key secret and every service token (they must
    stay usable for HMAC checks, so they cannot be hashed): this user only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def ensure_first_access_key(settings: ControllerSettings, repo: Repository) -> None:
    """At the first start, create the operator's access key pair and say where it is."""
    path = settings.data_dir / CREDENTIALS_FILE
    if repo.count_access_keys():
        return
    key = generate_access_key()
    repo.add_access_key(key.id, key.secret)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
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
    secure_directory(settings.data_dir)
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
        failures=lambda: reconciler.failures,
        sources=SourcePolicy.from_settings(settings),
    )

    def after_tick(snapshot: list[Any]) -> None:
        # Each step on its own: a failing roll check must not keep deletions or routes stale.
        for step in (operations.check_rolls, operations.collect_deleted):
            try:
                step(snapshot)
            except Exception:
                log.exception("%s failed", step.__name__)
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
        # Instances outlive the controller, however it stops: a restarted controller adopts
        # them. Only stopping the whole installation stops them (eas_core.installation).
        backend.shutdown(stop_instances=False)
        publisher.close()

    app = FastAPI(title="OpenEAS control API", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.repo = repo
    app.state.store = store
    app.state.backend = backend
    app.state.services = operations
    app.include_router(services.router)
    app.include_router(artefacts.router)
    app.include_router(resources.router)
    install_error_handlers(app)
    app.add_middleware(
        SignedRequests,
        repo=repo,
        guard=ReplayGuard(capacity=settings.signature_nonce_capacity),
        json_limit=settings.max_json_body_bytes,
        upload_limit=settings.max_artefact_bytes,
    )

    @app.get("/api/v1/health")
    def health() -> Health:
        return Health(status="ok", version=__version__, pid=os.getpid())

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
