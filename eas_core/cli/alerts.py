"""`eascmd alert create FILE.json | ls | desc NAME | delete NAME`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from pydantic import ValidationError

from eas_core.cli import output
from eas_core.cli.context import Context
from eas_core.cli.groups import AliasedGroup
from eas_core.errors import EASError, InvalidDescription
from eas_core.sdk.control import ControlClient
from eas_core.spec.alerts import AlertRule
from eas_core.spec.validation import field_errors

json_option = output.json_option


def _client(ctx: click.Context) -> ControlClient:
    obj: Context = ctx.obj
    return obj.client()


def read_rule(path: Path) -> AlertRule:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise EASError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidDescription([f"{path}: not valid JSON ({exc})"]) from None
    try:
        return AlertRule.model_validate(document)
    except ValidationError as exc:
        raise InvalidDescription([f"{path}: {e}" for e in field_errors(exc)]) from None


@click.group(
    cls=AliasedGroup, aliases={"ls": "list"}, short_help="Alert rules that POST to a callback URL."
)
def alert() -> None:
    """Alert rules: a metric of some services over a window, POSTed to a callback URL."""


@alert.command("create")
@click.argument("file", type=click.Path(path_type=Path))
@json_option
@click.pass_context
def create(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Create the alert rule in FILE, a JSON object:

    \b
    Name         lowercase letters, digits, _
    Services     service names; empty or absent: every service
    Metric       a series of `eascmd monitor` (share_5xx, latency_p99_ms, rps, ...)
    Condition    ">" or "<"
    Threshold    compared with the metric's mean over Window
    Window       seconds (default 60)
    Silence      seconds between repeats while it fires (default 600)
    Level        critical, warning (default) or info
    CallbackUrl  http(s) URL the alert is POSTed to as JSON
    """
    rule = _client(ctx).create_alert(read_rule(file))
    if as_json:
        output.emit_json(rule.model_dump(by_alias=True, mode="json"))
    else:
        output.success(f"alert {rule.name} created")


@alert.command("list")
@json_option
@click.pass_context
def list_alerts(ctx: click.Context, as_json: bool) -> None:
    """Every alert rule."""
    rules = [r.model_dump(by_alias=True, mode="json") for r in _client(ctx).list_alerts()]
    if as_json:
        output.emit_json(rules)
        return
    for rule in rules:
        rule["Services"] = ", ".join(rule["Services"]) or "(all)"
        rule["When"] = f"{rule['Metric']} {rule['Condition']} {rule['Threshold']:g}"
    columns = ["Name", "Services", "When", "Window", "Silence", "Level", "CallbackUrl"]
    output.table(rules, columns)


@alert.command("desc")
@click.argument("name")
@json_option
@click.pass_context
def describe(ctx: click.Context, name: str, as_json: bool) -> None:
    """The rule, whether it fires for each service, and its latest deliveries."""
    details = _client(ctx).describe_alert(name).model_dump(by_alias=True, mode="json")
    if as_json:
        output.emit_json(details)
        return
    output.fields(details["Rule"])
    output.table(details["States"], ["ServiceName", "Status", "Since", "Value"])
    output.table(
        details["Deliveries"],
        ["Time", "ServiceName", "Status", "Attempts", "Delivered", "Outcome"],
    )


@alert.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete the alert rule NAME (its states and delivery records go with it)."""
    _client(ctx).delete_alert(name)
    output.success(f"alert {name} deleted")
