"""The connection to an OpenEAS installation, as a Dagster resource.

Each field falls back to its ``EAS_PIPELINES_*`` setting (eas_pipelines.settings), then to
``~/.eas/config`` (what ``eascmd config`` writes).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from eas_core.errors import EASError
from eas_core.sdk.control import ClientConfig, ControlClient
from eas_pipelines.settings import ENV_PREFIX, PipelineSettings


class EASResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Control-API credentials and the gateway the smoke tests go through."""

    endpoint: str | None = Field(
        default=None, description="Control API URL (default: $EAS_PIPELINES_ENDPOINT)."
    )
    access_key_id: str | None = Field(
        default=None, description="Access key id (default: $EAS_PIPELINES_ACCESS_KEY_ID)."
    )
    access_key_secret: str | None = Field(
        default=None,
        description="Access key secret (default: $EAS_PIPELINES_ACCESS_KEY_SECRET).",
    )
    gateway: str | None = Field(
        default=None,
        description="Gateway URL for smoke tests (default: $EAS_PIPELINES_GATEWAY, else the "
        "service's endpoint).",
    )
    timeout: float = Field(default=120.0, description="Seconds per control-API call.")

    def config(self) -> ClientConfig:
        """Fields, then environment, then ``~/.eas/config`` — per value."""
        settings = PipelineSettings()
        endpoint = self.endpoint or settings.endpoint
        key_id = self.access_key_id or settings.access_key_id
        secret = self.access_key_secret or settings.access_key_secret
        if endpoint and key_id and secret:
            return ClientConfig(key_id, secret, endpoint)
        try:
            saved = ClientConfig.load()
        except EASError as exc:
            raise EASError(
                f"no OpenEAS connection: set {ENV_PREFIX}ENDPOINT, {ENV_PREFIX}ACCESS_KEY_ID "
                f"and {ENV_PREFIX}ACCESS_KEY_SECRET ({exc.message})"
            ) from None
        return ClientConfig(
            key_id or saved.access_key_id,
            secret or saved.access_key_secret,
            endpoint or saved.endpoint,
        )

    def client(self) -> ControlClient:
        config = self.config()
        return ControlClient(
            config.endpoint, config.access_key_id, config.access_key_secret, timeout=self.timeout
        )

    def gateway_url(self, endpoint: str | None = None) -> str:
        """The gateway to call services through; ``endpoint`` is a service's
        ``IntranetEndpoint`` (``http://host:port/api/predict/name``)."""
        gateway = self.gateway or PipelineSettings().gateway
        if gateway:
            return gateway.rstrip("/")
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme and parts.netloc:
                prefix = parts.path.split("/api/predict/", 1)[0]
                return f"{parts.scheme}://{parts.netloc}{prefix}".rstrip("/")
        raise EASError(f"no gateway URL: set {ENV_PREFIX}GATEWAY")
