"""`eascmd autoscale NAME …` and `eascmd events NAME`."""

from __future__ import annotations

import click
from pydantic import ValidationError

from eas_core.cli import output
from eas_core.cli.context import Context
from eas_core.errors import BadRequest
from eas_core.spec.monitoring import AutoscaleRule, AutoscaleStatus
from eas_core.spec.validation import field_errors


def _show(status: AutoscaleStatus, as_json: bool) -> None:
    if as_json:
        output.emit_json(status.model_dump(by_alias=True))
    elif status.rule is None:
        output.stdout.print(f"{status.service}: autoscaling off")
    else:
        rule = status.rule
        output.fields(
            {
                "ServiceName": status.service,
                "Min": rule.min,
                "Max": rule.max,
                "Metric": rule.metric,
                "Target": f"{rule.target:g}{'%' if rule.metric == 'cpu' else ''} per instance",
            }
        )


@click.command(short_help="Show, set or switch off a service's autoscaling.")
@click.argument("name")
@click.option("--min", "min_", type=int, help="Fewest instances.")
@click.option("--max", "max_", type=int, help="Most instances.")
@click.option("--qps", type=float, help="Target requests per second per instance.")
@click.option("--cpu", type=float, help="Target CPU utilisation per instance, % of metadata.cpu.")
@click.option("--queue", type=float, help="Target queued requests per instance.")
@click.option("--off", is_flag=True, help="Stop autoscaling NAME (its instance count stays).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def autoscale(
    ctx: click.Context,
    name: str,
    min_: int | None,
    max_: int | None,
    qps: float | None,
    cpu: float | None,
    queue: float | None,
    off: bool,
    as_json: bool,
) -> None:
    """Show, set (--min N --max M and one of --qps/--cpu/--queue) or remove (--off) NAME's
    autoscaling. Up at once, down after the cool-down; every change is in `eascmd events`."""
    obj: Context = ctx.obj
    client = obj.client()
    targets = {k: v for k, v in {"qps": qps, "cpu": cpu, "queue": queue}.items() if v is not None}
    setting = targets or min_ is not None or max_ is not None
    if off:
        if setting:
            raise click.UsageError("--off takes no --min, --max, --qps, --cpu or --queue")
        _show(client.autoscale_off(name), as_json)
        return
    if not setting:
        _show(client.autoscale(name), as_json)
        return
    if len(targets) != 1:
        raise click.UsageError("give exactly one target: --qps, --cpu or --queue")
    if min_ is None or max_ is None:
        raise click.UsageError("give both --min and --max")
    [(metric, target)] = targets.items()
    try:
        rule = AutoscaleRule.model_validate(
            {"Min": min_, "Max": max_, "Metric": metric, "Target": target}
        )
    except ValidationError as exc:
        raise BadRequest("; ".join(field_errors(exc))) from None
    _show(client.set_autoscale(name, rule), as_json)


@click.command(short_help="What the controller did to a service on its own.")
@click.argument("name")
@click.option("--limit", default=100, show_default=True, help="How many of the latest.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def events(ctx: click.Context, name: str, limit: int, as_json: bool) -> None:
    """What the controller did to NAME on its own (autoscaling, alerts), and why."""
    obj: Context = ctx.obj
    found = obj.client().events(name, limit=limit)
    if as_json:
        output.emit_json([e.model_dump(by_alias=True, mode="json") for e in found])
        return
    output.table(
        [
            {"Time": e.time.isoformat(timespec="seconds"), "Kind": e.kind, "Message": e.message}
            for e in found
        ],
        ["Time", "Kind", "Message"],
    )
