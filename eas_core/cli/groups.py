"""A click group with aliases (`ls` for `list`): an alias runs its command but is not listed
as a command of its own in `--help`; the command's help says which alias it has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click


class AliasedGroup(click.Group):
    def __init__(self, *args: Any, aliases: Mapping[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.aliases = dict(aliases or {})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # The command's own name, not the alias typed, is what errors and usage lines show.
        _, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else None), cmd, rest
