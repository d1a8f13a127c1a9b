"""`eascmd upload`: a file into the installation's artefact store, for deployments to name."""

from __future__ import annotations

from pathlib import Path

import click

from eas_core.cli import output
from eas_core.cli.context import Context, pass_context


@click.command(short_help="Store a model or processor file; print its URI.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--inner", is_flag=True, help="Accepted for compatibility (one network here).")
@output.json_option
@pass_context
def upload(context: Context, file: Path, inner: bool, as_json: bool) -> None:
    """Store a model or processor file; print the URI to use as model_path/processor_path."""
    result = context.client().upload(file)
    if as_json:
        output.emit_json(result)
    else:
        click.echo(f"[OK] Successfully uploaded file: {result.uri}")
