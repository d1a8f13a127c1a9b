"""The controller process: the composition root. Everything is wired here from one settings
object — store, artefact store, backend, reconciler, publisher, API — and nowhere else."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from eas_core import __version__
from eas_core.artefacts import ArtefactStore
from eas_core.auth.keys import generate_access_key
from eas_core.config import ControllerSettings
from eas_core.controller.api import (
    alerts,
    artefacts,
    monitoring,
    prometheus,
    resources,
    scaling,
    services,
    shadow,
)
from eas_core.controller.api.auth import ReplayGuard, SignedRequests
from eas_core.controller.api.errors import install_error_handlers
from eas_core.controller.backends.registry import build_backend
from eas_core.controller.checks import Checks
from eas_core.controller.cleanup import Cleanup
from eas_core.controller.desired import DesiredState
from eas_core.controller.metrics.alerting import Alerting
from eas_core.controller.metrics.autoscaler import Autoscaler
from eas_core.controller.metrics.collector import Collector
from eas_core.controller.operations import Operations
from eas_core.controller.publisher import Publisher, RoutePublishing
from eas_core.controller.reconciler import Reconciler
from eas_core.controller.rolls import RollPolice
from eas_core.controller.sources import SourcePolicy
from eas_core.controller.standby import LEADER_PATH, wait_as_standby
from eas_core.controller.store import (
    AlertStore,
    GroupStore,
    Repository,
    ScalingStore,
    SeriesStore,
    ShadowStore,
)
from eas_core.controller.store.lease import LeaderLease
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


def watch_lease(lease: LeaderLease, stopped: threading.Event, interval: float) -> None:
    """A leader that lost its lease (its lease connection broke, so PostgreSQL released the
    lock) may already have a successor: it stops at once, leaving its instances serving,
    and its supervisor starts it again as a standby."""
    while not stopped.wait(interval):
        if not lease.alive():
            log.critical("lost the leader lease: stopping so that only one controller acts")
            os.kill(os.getpid(), signal.SIGTERM)
            return


def build_app(settings: ControllerSettings, lease: LeaderLease | None = None) -> FastAPI:
    """Every part built once, in dependency order, each handed what it uses. ``lease`` is
    the leader lease this process holds (main takes it before calling this); none is a
    store only this controller uses."""
    secure_directory(settings.data_dir)
    repo = Repository(settings.database)
    if lease is not None:
        lease.announce()
    stopped = threading.Event()
    ensure_first_access_key(settings, repo)
    settings.prometheus_token()  # created at the first start, for the operator to hand out
    store = ArtefactStore(settings.artefact_dir)
    backend = build_backend(settings)
    publisher = Publisher(settings.gateway_urls, settings.internal_token())
    desired = DesiredState(repo, max_body_bytes=settings.max_body_bytes)
    series = SeriesStore(repo.engine)
    collector = Collector(settings, series)
    scaling_store = ScalingStore(repo.engine)
    alert_store = AlertStore(repo.engine)
    shadow_store = ShadowStore(repo.engine)
    group_store = GroupStore(repo.engine)
    alerting = Alerting(settings, repo, alert_store, series, scaling_store)
    autoscaler = Autoscaler(settings, repo, scaling_store, series)
    reconciler = Reconciler(
        backend,
        desired.services,
        desired.instance_spec,
        settings.reconcile_interval,
        # In this order: routes are published after rolls and deletions have settled.
        after_tick=[
            RollPolice(repo),
            Cleanup(repo, series),
            RoutePublishing(
                repo,
                publisher,
                waking=scaling_store.scaling_from_zero,
                shadows=shadow_store.all,
            ),
            collector,
            autoscaler,
            alerting,
        ],
    )
    sources = SourcePolicy.from_settings(settings)
    checks = Checks(
        backend.nodes,
        sources,
        native_in_public=settings.native_processors_in_public,
        created_groups=lambda: group_store.all().keys(),
    )
    operations = Operations(
        settings,
        repo,
        store,
        checks,
        snapshot=reconciler.latest,
        poke=reconciler.poke,
        gpu_use=lambda: collector.instance_gpu,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reconciler.tick()  # adopt what runs and publish before answering anything
        reconciler.start()
        collector.start()
        watchdog = None
        if lease is not None and lease.shared:
            watchdog = threading.Thread(
                target=watch_lease,
                args=(lease, stopped, settings.lease_retry_seconds),
                name="lease-watch",
                daemon=True,
            )
            watchdog.start()
        yield
        stopped.set()
        collector.stop()
        reconciler.stop()
        alerting.stop()
        # Instances outlive the controller, however it stops: a restarted controller adopts
        # them. Only stopping the whole installation stops them (eas_core.installation).
        backend.shutdown(stop_instances=False)
        publisher.close()
        if lease is not None:
            lease.release()  # only after everything that acts has stopped

    app = FastAPI(title="OpenEAS control API", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.repo = repo
    app.state.store = store
    app.state.backend = backend
    app.state.services = operations
    app.state.series = series
    app.state.snapshot = reconciler.latest
    app.state.scaling = scaling_store
    app.state.alerts = alert_store
    app.state.shadows = shadow_store
    app.state.groups = group_store
    app.state.gateways = publisher.gateways
    app.state.autoscaler = autoscaler
    app.state.poke = reconciler.poke
    app.state.sources = sources
    app.include_router(services.router)
    app.include_router(monitoring.router)
    app.include_router(prometheus.router)
    app.include_router(scaling.router)
    app.include_router(scaling.internal)
    app.include_router(shadow.router)
    app.include_router(alerts.router)
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
        return Health(
            status="ok",
            version=__version__,
            pid=os.getpid(),
            role="leader",
            leader=settings.announced_url,
        )

    @app.get(LEADER_PATH, include_in_schema=False)
    def leader() -> JSONResponse:
        # For a load balancer's health check: 200 here, 503 on a standby.
        return JSONResponse({"role": "leader", "leader": settings.announced_url})

    return app


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(levelname)s] %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = ControllerSettings()
    # uvicorn installs its own SIGINT/SIGTERM handlers and runs the lifespan's shutdown.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    lease = LeaderLease(settings.database, settings.announced_url)
    # Nothing that acts (backend, reconciler, adoption of running instances) is built
    # before the lease is ours; until then a standby only answers where the leader is.
    if not lease.try_acquire(unreachable_ok=False) and not wait_as_standby(settings, lease):
        return
    app = build_app(settings, lease)
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
