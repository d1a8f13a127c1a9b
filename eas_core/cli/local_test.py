"""`eascmd test`: one service run in the foreground from its description, no control plane."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from eas_core.cli.description import read_description


@click.command(name="test", short_help="Run a service locally in the foreground.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--port", default=8080, show_default=True, help="Port to serve on.")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where packages are unpacked (default: a temporary directory).",
)
def test_locally(file: Path, port: int, workdir: Path | None) -> None:
    """Run a service locally in the foreground, no control plane (for debugging)."""
    # Imported here: the instance runtime is only needed by this command.
    from eas_core.runtime.local import run

    run(
        read_description(file),
        port=port,
        workdir=workdir or Path(tempfile.mkdtemp(prefix="eas-test-")),
    )
