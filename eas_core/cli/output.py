"""How eascmd prints: rich tables on stdout for people, plain JSON with --json, and on stderr
(so stdout stays parseable) one line per event in four styles: progress (``… waiting``, dim
cyan), success (``[OK]``, green), warning (``[WARN]``, yellow) and failure (``[FAIL]``, red).
The tags are text, not only colour: piped or with NO_COLOR the lines read the same."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from eas_core.sdk import ControlModel

# Piped output is not cut at 80 columns: scripts grep endpoints and tokens from it.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 1000)
stderr = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 1000)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def emit_json(data: object) -> None:
    """What the control API answered, with its own key spellings (models are dumped by their
    wire aliases; plain JSON values pass through)."""
    sys.stdout.write(json.dumps(_wire(data), indent=2, ensure_ascii=False) + "\n")


def _wire(value: object) -> object:
    if isinstance(value, ControlModel):
        return value.wire()
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, mode="json")
    if isinstance(value, list | tuple):
        return [_wire(item) for item in value]
    return value


def rows(items: Iterable[ControlModel]) -> list[dict[str, object]]:
    """Table rows keyed by the wire spellings, which are the tables' column names."""
    return [item.model_dump(by_alias=True) for item in items]


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> None:
    t = Table(*columns, show_lines=False)
    for row in rows:
        t.add_row(*(_cell(row.get(c)) for c in columns))
    stdout.print(t)


def fields(data: Mapping[str, object], keys: Sequence[str] | None = None) -> None:
    """A two-column key/value table (what `desc` shows)."""
    t = Table(show_header=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for key in keys or list(data):
        value = data.get(key)
        if isinstance(value, dict | list):
            value = json.dumps(value, indent=2, ensure_ascii=False)
        t.add_row(key, _cell(value))
    stdout.print(t)


# Each kind of line: its tag and the tag's style.
STYLES = {
    "progress": ("…", "dim cyan"),
    "success": ("[OK]", "green"),
    "warning": ("[WARN]", "yellow"),
    "failure": ("[FAIL]", "bold red"),
}


def line(kind: str, message: str) -> Text:
    """One event line: the tag styled, the message as plain text (built as Text, never parsed
    as markup: "[demo]" is a service name and "[OK]" a tag, not rich style tags)."""
    tag, style = STYLES[kind]
    return Text.assemble((tag, style), " ", message)


def progress(message: str) -> None:
    """Something is under way (a wait, and why it is not done yet)."""
    stderr.print(line("progress", message), highlight=False)


def success(message: str) -> None:
    stderr.print(line("success", message), highlight=False)


def warning(message: str) -> None:
    stderr.print(line("warning", message), highlight=False)


def failure(message: str) -> None:
    stderr.print(line("failure", message), highlight=False)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Failed(click.ClickException):
    """A command that cannot do what it was asked: one red ``[FAIL]`` line, exit status 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        failure(self.message)
