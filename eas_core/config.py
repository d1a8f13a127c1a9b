"""Configuration: one schema per process kind, read once from ``EAS_*`` variables and flags.

This is the only module of ``eas_core`` that reads the environment: every setting is a field
of a settings class here (``EAS_*``, and the object stores' ``OSS_*`` fallbacks), and the
environment a process hands on to the processes it starts comes from
:func:`child_environment`. Defaults make ``eascmd server`` work with nothing set: everything
lives under one data directory (``~/.eas-server`` unless ``EAS_DATA_DIR`` or ``--data-dir``
says otherwise).

    InstallationSettings   every process of one installation (data dir, host, ports)
    ControllerSettings     the controller: reconcile, supervision, artefact limits, node size
    GatewaySettings        a gateway: body and upstream limits, retries, the handed-over socket
    HttpLimitSettings      what one HTTP server lets its callers hold (gateway and instances)
    RuntimeSettings        one instance, set by the backend in the instance's environment
    ObjectStoreSettings    oss:// and s3:// endpoints and credentials
    ClientSettings         eascmd and the SDK: where the client configuration file is
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eas_core.http.limits import Limits

DEFAULT_DATA_DIR = Path.home() / ".eas-server"
DEFAULT_CONTROLLER_PORT = 8000
DEFAULT_GATEWAY_PORT = 8080
DEFAULT_BACKEND = "local"
MiB = 1024 * 1024
# The largest artefact (model or processor package) stored, fetched or unpacked.
MAX_ARTEFACT_BYTES = 2048 * MiB
# Replay window for signed predict calls: the official SDK writes its local time labelled
# GMT, so ±15 h lets every time zone in and keeps a day-old captured call out (SPEC §5).
SIGNATURE_MAX_SKEW = 15 * 3600.0
_HTTP = Limits()

# What `store` may name: SQLite, or PostgreSQL through psycopg 3 (the `postgresql` extra).
STORE_SCHEMES = ("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EAS_", extra="ignore")


class InstallationSettings(_Settings):
    """Shared by every process of one installation."""

    data_dir: Path = DEFAULT_DATA_DIR
    host: str = "127.0.0.1"
    controller_port: int = DEFAULT_CONTROLLER_PORT
    gateway_port: int = DEFAULT_GATEWAY_PORT
    # What `create` prints as the endpoint; defaults to http://host:gateway_port.
    public_endpoint: str | None = None
    # Where instances run: a name in eas_core.controller.backends.registry.BACKENDS.
    backend: str = DEFAULT_BACKEND
    # The controller's store (`eascmd server --store`, EAS_STORE): a SQLAlchemy URL,
    # sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB; default a SQLite file
    # under data_dir. One controller per database (deploy/multi-machine/README.md).
    store: str | None = None

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(STORE_SCHEMES):
            scheme = value.split(":", 1)[0]
            raise ValueError(
                f"store: {scheme!r} is not a supported database; expected sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DATABASE"
            )
        return value

    # The Ray cluster the `ray` backend places instances on (``ray start --head`` prints it).
    ray_address: str | None = None

    @property
    def controller_url(self) -> str:
        return f"http://{self.host}:{self.controller_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def endpoint(self) -> str:
        return (self.public_endpoint or self.gateway_url).rstrip("/")

    def internal_token(self) -> str:
        """Secret shared by the controller and gateways of this installation (created once)."""
        return read_or_create_secret(self.data_dir / "internal.token")

    def prometheus_token(self) -> str:
        """Bearer token of ``/api/v1/prometheus/targets`` (Prometheus cannot sign requests)."""
        return read_or_create_secret(self.data_dir / "prometheus.token")


class ControllerSettings(InstallationSettings):
    database_url: str | None = None  # default: SQLite file under data_dir
    reconcile_interval: float = Field(default=0.5, gt=0)
    # Seconds a stopped instance keeps serving in-flight requests after leaving the route table.
    drain_seconds: float = Field(default=1.5, ge=0)
    restart_backoff_initial: float = Field(default=1.0, gt=0)
    restart_backoff_max: float = Field(default=30.0, gt=0)
    # Seconds an instance may stay unable to answer — every worker thread stuck past the
    # request deadline, or its readiness probe unanswered — before it is killed and restarted.
    hung_restart_seconds: float = Field(default=30.0, gt=0)
    max_artefact_bytes: int = MAX_ARTEFACT_BYTES
    # Largest body of a JSON call (descriptions, changes): refused with 413 before reading.
    max_json_body_bytes: int = Field(default=1 * MiB, gt=0)
    # Signature nonces remembered against replays (each for twice the 15-minute skew).
    signature_nonce_capacity: int = Field(default=200_000, gt=0)
    # Local directories model_path / processor_path may read from; default: the user's home
    # and the directory the installation was started in. The data directory never, whatever
    # this says (it holds the access keys and every token).
    artefact_local_roots: list[Path] | None = None
    # Hosts model_path / processor_path URLs may name: "*" is any host whose addresses are
    # all public; "host" or "host:port" allows that one even on loopback, link-local or a
    # private network. The installation's own control API and gateway never.
    artefact_url_hosts: list[str] = ["*"]
    # Capacity of the local node; defaults to what the machine has.
    node_cpu: float | None = None
    node_memory_mb: int | None = None
    node_gpu: int = 0
    # The resource group (`metadata.resource`) of the local node.
    node_resource_group: str = "public"
    # Whether C/C++ and Java processors (native code sharing the node with everyone's
    # services) may run in the shared `public` group; false keeps them to dedicated groups.
    native_processors_in_public: bool = True
    max_body_bytes: int = 64 * MiB
    # Monitoring: every ``metrics_interval`` seconds the controller scrapes each instance's
    # and the gateway's Prometheus text and stores one point per metric. Points are kept at
    # that step for ``metrics_fine_seconds``, and averaged to ``metrics_coarse_step`` for
    # ``metrics_coarse_seconds``; older rows are pruned, so the store stays bounded.
    metrics_interval: float = Field(default=5.0, gt=0)
    metrics_scrape_timeout: float = Field(default=2.0, gt=0)
    metrics_fine_seconds: float = Field(default=3600.0, gt=0)
    metrics_coarse_step: float = Field(default=60.0, gt=0)
    metrics_coarse_seconds: float = Field(default=7 * 86400.0, gt=0)
    # Autoscaling scales up at once, and down only once the load has stayed low for this
    # many seconds since its last change.
    autoscale_cooldown: float = Field(default=300.0, gt=0)
    # An alert's POST to its callback URL: each try's timeout, and how many tries (with the
    # installation's back-off between them) before the delivery is recorded as failed.
    alert_timeout: float = Field(default=5.0, gt=0)
    alert_tries: int = Field(default=4, ge=1, le=20)
    alert_backoff_initial: float = Field(default=1.0, gt=0)
    # Several controllers on one PostgreSQL store: the one holding the leader lease acts,
    # the others wait as standbys and try the lease every ``lease_retry_seconds``.
    # ``advertise_url`` is the address the leader announces to them (and they to callers);
    # default http://host:controller_port.
    lease_retry_seconds: float = Field(default=1.0, gt=0)
    advertise_url: str | None = None
    # Every gateway the route table is pushed to (EAS_GATEWAYS='["http://h1:8080", …]');
    # default the one gateway at http://host:gateway_port.
    gateways: list[str] | None = None

    @property
    def announced_url(self) -> str:
        return (self.advertise_url or self.controller_url).rstrip("/")

    @property
    def gateway_urls(self) -> list[str]:
        return [g.rstrip("/") for g in self.gateways] if self.gateways else [self.gateway_url]

    @property
    def database(self) -> str:
        return self.store or self.database_url or f"sqlite:///{self.data_dir / 'eas.db'}"

    @property
    def artefact_dir(self) -> Path:
        """The installation's artefact store (what ``eas://`` URIs name)."""
        return self.data_dir / "artefacts"

    @property
    def cache_dir(self) -> Path:
        """This machine's cache of unpacked artefacts."""
        return self.data_dir / "cache"


class HttpLimitSettings(_Settings):
    """What one HTTP server — the gateway, an instance — lets its callers hold
    (eas_core.http.limits.Limits says what each one means)."""

    max_url_bytes: int = Field(default=_HTTP.max_url_bytes, gt=0)
    max_header_bytes: int = Field(default=_HTTP.max_header_bytes, gt=0)
    max_headers: int = Field(default=_HTTP.max_headers, gt=0)
    max_buffered_bytes: int = Field(default=_HTTP.max_buffered_bytes, gt=0)
    idle_timeout: float = Field(default=_HTTP.idle_timeout, gt=0)
    header_timeout: float = Field(default=_HTTP.header_timeout, gt=0)
    body_timeout: float = Field(default=_HTTP.body_timeout, gt=0)
    max_connections: int = Field(default=_HTTP.max_connections, gt=0)
    max_pipeline: int = Field(default=_HTTP.max_pipeline, gt=0)
    write_high_water: int = Field(default=_HTTP.write_high_water, gt=0)
    write_low_water: int = Field(default=_HTTP.write_low_water, ge=0)


class GatewaySettings(InstallationSettings, HttpLimitSettings):
    max_body_bytes: int = 64 * MiB
    upstream_timeout: float = Field(default=60.0, gt=0)
    retries: int = Field(default=2, ge=0)
    # Largest clock skew of a signed call's `Date` (replay protection); 0 turns it off.
    signature_max_skew: float = Field(default=SIGNATURE_MAX_SKEW, ge=0)
    # Seconds a pooled connection to an instance may sit unused before it is closed rather
    # than reused: below the instances' idle_timeout, so the gateway never sends on a
    # connection the instance is closing.
    upstream_idle_timeout: float = Field(default=30.0, gt=0)
    # A service scaled to zero: calls are held at most this long while an instance starts,
    # and at most this many at once per service; then 503 with Retry-After.
    wake_timeout: float = Field(default=60.0, gt=0)
    wake_max_held: int = Field(default=256, gt=0)
    # A listening socket handed over by the supervising installation (file descriptor),
    # kept across gateway restarts so that no caller is refused meanwhile.
    gateway_fd: int | None = None
    # Shadow traffic (eas_core.gateway.shadow): copies in flight at once, bytes of bodies they
    # may hold, seconds each may take; pairs kept per service, and bytes of each body kept.
    shadow_max_in_flight: int = Field(default=64, gt=0)
    shadow_max_bytes: int = Field(default=16 * MiB, gt=0)
    shadow_timeout: float = Field(default=10.0, gt=0)
    shadow_ring_size: int = Field(default=256, gt=0, le=100_000)
    shadow_body_bytes: int = Field(default=4096, ge=0)
    # Every controller of the installation, leader and standbys
    # (EAS_CONTROLLERS='["http://h1:8081", …]'); default the one at http://host:controller_port.
    controllers: list[str] | None = None

    @property
    def controller_urls(self) -> list[str]:
        if self.controllers:
            return [c.rstrip("/") for c in self.controllers]
        return [self.controller_url]


class ObjectStoreSettings(_Settings):
    """Where ``oss://`` and ``s3://`` model paths are read from, with what credentials (the
    installation's, never a description's). Read where packages are fetched: the controller,
    and ``eascmd test``. Unset S3 keys fall back to boto3's own chain (``AWS_*``,
    ``~/.aws``); unset OSS keys mean anonymous reads of public buckets."""

    oss_access_key_id: str | None = Field(
        default=None, validation_alias=AliasChoices("EAS_OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_ID")
    )
    oss_access_key_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EAS_OSS_ACCESS_KEY_SECRET", "OSS_ACCESS_KEY_SECRET"),
    )
    oss_security_token: str | None = None  # with STS credentials
    s3_endpoint_url: str | None = None  # any S3-compatible store; AWS when unset
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str | None = None


class RuntimeSettings(HttpLimitSettings):
    """One instance. Set by the backend in the instance's environment; absent when a
    processor is run by hand (``python app.py``), where it serves on 0.0.0.0:8080."""

    service_name: str = "default"
    instance_id: str = ""
    version: int = 0
    host: str = "0.0.0.0"
    port: int = 8080
    token: str | None = None
    worker_threads: int | None = None
    worker_processes: int | None = None
    max_queue_size: int = 64
    keepalive_ms: int = 5000
    # Server-side batching (rpc.batching, rpc.max_batch_size, rpc.max_batch_timeout in ms).
    batching: bool = False
    max_batch_size: int = Field(default=16, ge=1)
    max_batch_timeout_ms: int = Field(default=50, ge=0)
    max_body_bytes: int = 64 * MiB
    model_entry: str = ""
    model_config_text: str = Field(default="", alias="EAS_MODEL_CONFIG")
    processor: str = ""  # built-in processor code, when not a custom one
    instance_dir: Path | None = None  # where the runtime reports why it failed
    # The node's artefact store (what eas:// URIs name), its cache of unpacked artefacts,
    # and the largest artefact it unpacks: set by the backend that runs the instance.
    artefact_store: Path | None = None
    cache_dir: Path | None = None
    max_artefact_bytes: int = Field(default=MAX_ARTEFACT_BYTES, gt=0)
    signature_max_skew: float = Field(default=SIGNATURE_MAX_SKEW, ge=0)  # as the gateway's

    model_config = SettingsConfigDict(env_prefix="EAS_", extra="ignore", populate_by_name=True)

    @property
    def is_managed(self) -> bool:
        return bool(self.instance_id)


def read_or_create_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    try:
        os.link(tmp, path)  # atomic: the first process to create it wins
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        tmp.unlink()
    return value


class ClientSettings(_Settings):
    """``eascmd`` and the SDK's ``ClientConfig``."""

    model_config = SettingsConfigDict(env_prefix="EAS_", extra="ignore", env_ignore_empty=True)
    # The file `eascmd config` writes: ~/.eas/config unless EAS_CONFIG names another.
    config: Path | None = None

    @property
    def config_path(self) -> Path:
        return self.config or Path.home() / ".eas" / "config"


def client_config_path() -> Path:
    """``~/.eas/config`` unless ``EAS_CONFIG`` names another file."""
    return ClientSettings().config_path


def child_environment(
    extra: Mapping[str, str],
    *,
    drop_prefix: str | None = None,
    search_paths: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, str]:
    """The environment for a process we start: ours, less the variables whose names start
    with ``drop_prefix`` (settings meant for this process only), plus ``extra``. Each
    ``search_paths`` variable (``LD_LIBRARY_PATH``, …) gets the given directories in front of
    what ours holds."""
    env = {
        name: value
        for name, value in os.environ.items()
        if drop_prefix is None or not name.startswith(drop_prefix)
    }
    env.update(extra)
    for name, directories in (search_paths or {}).items():
        inherited = env.get(name)
        env[name] = os.pathsep.join([*directories, *([inherited] if inherited else [])])
    return env
