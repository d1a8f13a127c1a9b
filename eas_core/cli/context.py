"""What every eascmd command is given: the global options, turned into a control client only
when a command needs one (so `eascmd config` and `eascmd test` run with no configuration)."""

from __future__ import annotations

from pathlib import Path

import click

from eas_core.sdk.control import ClientConfig, ControlClient


class Context:
    def __init__(
        self, config: Path | None, key_id: str | None, secret: str | None, endpoint: str | None
    ) -> None:
        self.config_path = config
        self.key_id = key_id
        self.secret = secret
        self.endpoint = endpoint
        self._client: ControlClient | None = None

    def client(self) -> ControlClient:
        """``-i``/``-k``/``-e`` where given, the saved configuration for the rest."""
        if self._client is None:
            if self.key_id and self.secret and self.endpoint:
                config = ClientConfig(self.key_id, self.secret, self.endpoint)
            else:
                saved = ClientConfig.load(self.config_path)
                config = ClientConfig(
                    self.key_id or saved.access_key_id,
                    self.secret or saved.access_key_secret,
                    self.endpoint or saved.endpoint,
                )
            self._client = ControlClient.from_config(config)
        return self._client


# Gives a command the Context that the `eascmd` group made from the global options.
pass_context = click.make_pass_decorator(Context)
