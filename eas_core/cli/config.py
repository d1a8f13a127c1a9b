"""`eascmd config`: where the other commands find the control API and the access key."""

from __future__ import annotations

import click

from eas_core.cli.context import Context, pass_context
from eas_core.sdk.control import ClientConfig, normalize_endpoint


@click.command()
@click.option("-i", "--access-key-id", "key_id", required=True)
@click.option("-k", "--access-key-secret", "secret", required=True)
@click.option("-e", "--endpoint", default="http://127.0.0.1:8000", show_default=True)
@pass_context
def config(context: Context, key_id: str, secret: str, endpoint: str) -> None:
    """Store credentials and the control endpoint in ~/.eas/config."""
    path = ClientConfig(key_id, secret, normalize_endpoint(endpoint)).save(context.config_path)
    click.echo(f"Configuration saved to: {path}")
