"""`eascmd monitor NAME`: a service's time series, live in the terminal or as JSON."""

from __future__ import annotations

import time
from datetime import datetime

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table

from eas_core.cli import output
from eas_core.cli.context import Context
from eas_core.spec.monitoring import METRICS, ServiceMetrics

# The columns of the live view, in the order people read them.
LIVE_COLUMNS = (
    "rps",
    "rps_2xx",
    "rps_4xx",
    "rps_5xx",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "queue",
    "in_kbps",
    "out_kbps",
    "cpu_cores",
    "memory_mb",
    "gpu_memory_mb",
    "gpu_util",
    "restarts",
)
SPARK = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 24


def sparkline(values: list[float]) -> str:
    """The last points of a series as block characters, scaled to their own maximum."""
    recent = values[-SPARK_POINTS:]
    top = max(recent, default=0.0)
    if top <= 0:
        return SPARK[0] * len(recent)
    return "".join(SPARK[min(int(v / top * (len(SPARK) - 1)), len(SPARK) - 1)] for v in recent)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"


def render(data: ServiceMetrics) -> Group:
    """The latest value of each metric per instance and for the whole service, and the
    service's request rate over the window as a sparkline."""
    rows: dict[str | None, dict[str, float]] = {}
    for series in data.series:
        if series.points:
            rows.setdefault(series.instance, {})[series.metric] = series.points[-1][1]
    table = Table("instance", *LIVE_COLUMNS, title=f"{data.service} (every {data.step:g} s)")
    for instance in sorted(rows, key=lambda i: (i is not None, i or "")):
        latest = rows[instance]
        table.add_row(
            instance or "[bold]service[/bold]", *(_number(latest.get(c)) for c in LIVE_COLUMNS)
        )
    rps = data.get("rps")
    trend = Table.grid(padding=(0, 1))
    trend.add_row(
        "rps",
        sparkline([v for _, v in rps.points]) if rps else "(no points yet)",
        datetime.now().strftime("%H:%M:%S"),
    )
    return Group(table, trend)


@click.command(short_help="A service's time series, live or as JSON.")
@click.argument("name")
@click.option("--instance", help="Only this instance's series.")
@click.option("--since", default="15m", show_default=True, help="How far back: 30s, 15m, 2h, 7d.")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(list(METRICS)),
    help="Only this metric (repeatable).",
)
@click.option("--interval", default=2.0, show_default=True, help="Seconds between refreshes.")
@click.option("--json", "as_json", is_flag=True, help="Print the series as JSON and exit.")
@click.pass_context
def monitor(
    ctx: click.Context,
    name: str,
    instance: str | None,
    since: str,
    metrics: tuple[str, ...],
    interval: float,
    as_json: bool,
) -> None:
    """Requests, status codes, latency, queue, traffic, CPU and memory of NAME.

    Without --json, a live view refreshing until Ctrl-C."""
    obj: Context = ctx.obj
    client = obj.client()

    def fetch() -> ServiceMetrics:
        return client.metrics(name, metrics=metrics or None, since=since, instance=instance)

    if as_json:
        output.emit_json(fetch().model_dump(by_alias=True))
        return
    with Live(render(fetch()), console=output.stdout, auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            live.update(render(fetch()), refresh=True)
