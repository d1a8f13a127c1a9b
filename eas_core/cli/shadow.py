"""`eascmd shadow NAME --to TARGET --percent P` / `--off` / `--report`: shadow traffic."""

from __future__ import annotations

import click

from eas_core.cli import output
from eas_core.cli.context import Context
from eas_core.spec.shadow import ShadowReport


def _show_setting(report: ShadowReport) -> None:
    if report.setting is None:
        output.stdout.print(f"{report.service}: mirroring off")
        return
    output.fields(
        {
            "ServiceName": report.service,
            "Target": report.setting.target,
            "Percent": f"{report.setting.percent:g}%",
        }
    )


def _show_report(report: ShadowReport) -> None:
    _show_setting(report)
    counters = report.counters
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(counters.dropped.items())) or "0"
    output.fields(
        {
            "Mirrored": counters.mirrored,
            "Compared": counters.compared,
            "Agreed": counters.agreed,
            "Disagreed": counters.disagreed,
            "DisagreementRate": f"{report.disagreement_rate:.1%}",
            "Failed": counters.failed,
            "Dropped": dropped,
        }
    )
    for gateway, why in report.unreachable.items():
        output.warning(f"gateway {gateway} could not be asked: {why}")
    rows = [
        {
            "LiveStatus": p.live_status,
            "ShadowStatus": p.shadow_status or p.shadow_error,
            "LiveMs": f"{p.live_ms:.1f}",
            "ShadowMs": f"{p.shadow_ms:.1f}",
            "Same": "yes" if p.same else "NO",
            "LiveBody": p.live_body[:40],
            "ShadowBody": p.shadow_body[:40],
        }
        for p in report.pairs
    ]
    if rows:
        output.table(rows, list(rows[0]))


@click.command(short_help="Mirror a share of a service's calls to another service.")
@click.argument("name")
@click.option("--to", "target", help="The service that gets the copies (e.g. a candidate).")
@click.option("--percent", type=float, help="Share of NAME's calls to copy, 0 to 100.")
@click.option("--off", is_flag=True, help="Stop mirroring NAME's calls.")
@click.option("--report", is_flag=True, help="Show the counters and the latest pairs.")
@click.option("--limit", type=int, default=20, show_default=True, help="Pairs to show.")
@output.json_option
@click.pass_context
def shadow(
    ctx: click.Context,
    name: str,
    target: str | None,
    percent: float | None,
    off: bool,
    report: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Copy --percent of NAME's calls to --to TARGET once NAME has answered them: callers get
    NAME's answers only, and the gateway keeps the pairs of answers (--report). --off stops
    it; with no option, the setting is shown."""
    obj: Context = ctx.obj
    client = obj.client()
    if sum((off, report, target is not None or percent is not None)) > 1:
        raise click.UsageError("give one of: --to/--percent, --off, --report")
    if off or target is not None or percent is not None:
        if off:
            answer = client.shadow_off(name)
        elif target is None or percent is None:
            raise click.UsageError("give both --to TARGET and --percent P")
        else:
            answer = client.set_shadow(name, target, percent)
        output.progress("waiting for the gateways to take the setting")
        client.wait_shadow_applied(name)
        output.success(f"{name}: mirroring {'off' if off else 'on'}")
    else:
        answer = client.shadow(name, limit=limit if report else 0)
    if as_json:
        output.emit_json(answer)
    elif report:
        _show_report(answer)
    else:
        _show_setting(answer)
