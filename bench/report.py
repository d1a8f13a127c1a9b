"""The results file: one table per workload, the details behind it, and how it was made."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.load import Row
from bench.openeas import Lifecycle
from bench.run import Entry, Settings
from bench.workloads import WORKLOADS


def _n(value: float, digits: int = 0) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _cores(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.0f}" for v in values) if values else "–"


def _errors(row: Row | None) -> str:
    if row is None:
        return "–"
    count = row.error_count
    return str(count) if count == 0 else f"**{count} ⚠**"


def reason(text: str) -> str:
    """A skip's reason on one line: its first line and, when a log tail follows, the tail's
    last line (where a traceback names the error)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "no reason given"
    if len(lines) > 1:
        return f"{lines[0]} … {lines[-1]}"[:600]
    return lines[0][:600]


def _ceiling(entries: list[Entry], connections: int) -> float:
    for entry in entries:
        if entry.label.startswith("nginx") and connections in entry.rows:
            return entry.rows[connections].rps
    return math.nan


def summary(workload: str, entries: list[Entry]) -> list[str]:
    """One row per server: the brief's headline figures."""
    concurrency = WORKLOADS[workload].concurrency
    top = max(concurrency)
    loaded = [c for c in concurrency if c > 1]
    ceiling = _ceiling(entries, 32)
    head = (
        ["server"]
        + [f"req/s c={c}" for c in loaded]
        + [
            "% of nginx (c=32)",
            "p50 c=1 (µs)",
            "p99 c=1 (µs)",
            f"p99 c={top} (µs)",
            "errors",
            f"CPU0 / CPU1 % at c={top}",
            f"server CPU % at c={top}",
            "processes",
        ]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for entry in entries:
        if entry.skipped:
            continue
        rows = entry.rows
        one, busiest = rows.get(1), rows.get(top)
        total_errors = sum(r.error_count for r in rows.values())
        c32 = rows.get(32)
        share = 100 * c32.rps / ceiling if c32 and ceiling and not math.isnan(ceiling) else math.nan
        cells = (
            [entry.label]
            + [_n(rows[c].rps) if c in rows else "–" for c in loaded]
            + [
                f"{_n(share)}%" if not math.isnan(share) else "–",
                _n(one.p50_us) if one else "–",
                _n(one.p99_us) if one else "–",
                _n(busiest.p99_us) if busiest else "–",
                str(total_errors) if total_errors == 0 else f"**{total_errors} ⚠**",
                _cores(busiest.cores) if busiest else "–",
                _n(busiest.server_cpu) if busiest else "–",
                str(entry.processes) if entry.processes is not None else "–",
            ]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def details(entries: list[Entry]) -> list[str]:
    lines = [
        "| server | c | req/s (median) | runs min–max | p50 µs | p99 µs | requests | errors "
        "| CPU % per core | server CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in entries:
        for connections, row in sorted(entry.rows.items()):
            low, high = row.spread
            lines.append(
                f"| {entry.label} | {connections} | {_n(row.rps)} | {_n(low)}–{_n(high)} "
                f"| {_n(row.p50_us)} | {_n(row.p99_us)} | {row.requests} | {_errors(row)} "
                f"| {_cores(row.cores)} | {_n(row.server_cpu)} |"
            )
    return lines


def flagged(entries: list[Entry]) -> list[str]:
    lines = []
    for entry in entries:
        for connections, row in sorted(entry.rows.items()):
            if row.error_count:
                kinds = ", ".join(f"{k} {v}" for k, v in row.errors.items() if v)
                lines.append(f"- ⚠ {entry.label} c={connections}: {kinds}")
    return lines


def lifecycle_section(services: list[Lifecycle]) -> list[str]:
    if not services:
        return []
    lines = ["## OpenEAS: cold start and memory", ""]
    for figures in services:
        lines += _service_lifecycle(figures)
    lines += [
        "`instances` is every process under the controller (the instance and its worker "
        "processes); `gateway` includes its children.",
        "",
    ]
    return lines


def _service_lifecycle(figures: Lifecycle) -> list[str]:
    cold = ", ".join(f"{s:.2f}" for s in figures.cold_start_s)
    switches = ", ".join(f"{s:.1f}" for s in figures.switch_s)
    parts = ("gateway", "controller", "instances", "total")
    return [
        f"### {figures.service}",
        "",
        f"- cold start (`create` → Running, polled every 20 ms), median of "
        f"{len(figures.cold_start_s)}: **{figures.cold_start_median:.2f} s** (each: {cold})",
        f"- {figures.switches} version switches (1 ↔ 2, each waited until the new version "
        f"serves): {switches} s",
        "",
        "| RSS (MB) | " + " | ".join(parts) + " |",
        "|---|" + "---:|" * len(parts),
        "| after deploy | "
        + " | ".join(_n(figures.rss_after_deploy.get(p, math.nan), 1) for p in parts)
        + " |",
        f"| 10 s after {figures.switches} switches | "
        + " | ".join(_n(figures.rss_after_switches.get(p, math.nan), 1) for p in parts)
        + " |",
        "",
    ]


def render(
    results: dict[str, list[Entry]],
    lifecycle: list[Lifecycle],
    settings: Settings,
    context: dict[str, Any],
) -> str:
    lines = ["# OpenEAS and its peers", ""]
    if context.get("note"):
        lines += [f"> **{context['note']}**", ""]
    lines += [
        f"- command: `{context['command']}`",
        f"- date: {context['date']}",
        f"- machine: {context['machine']}",
        f"- before the runs: {context['before']}",
        f"- versions: {context['versions']}",
        f"- method: server pinned to CPU 0 (`taskset -c 0`, every process it starts "
        f"inherits it), wrk pinned to CPU 1 (1 thread), keep-alive; median of "
        f"{settings.runs} × {settings.duration:g} s runs per row (each run also stops at "
        f"{settings.max_requests:,} answers), after a 1 s warm-up; a row with errors is "
        "flagged ⚠. Latencies are wrk's (no coordinated-omission correction). CPU % per "
        "core is from /proc/stat over each run (CPU0 the server's, CPU1 wrk's; other work "
        "on the machine shows there too); server CPU % is the CPU time of the server's own "
        "processes over the run (100 = one core).",
        f"- batching settings wherever a server batches: at most {settings.batch.size} "
        f"requests, at most {settings.batch.timeout_ms:g} ms waiting (BentoML: its adaptive "
        "dispatcher decides the wait)",
        "",
    ]
    for workload, entries in results.items():
        layers = "-".join(str(width) for width in settings.mlp_layers)
        lines += [f"## {WORKLOADS[workload].title.format(layers=layers)}", ""]
        lines += summary(workload, entries)
        lines += [""]
        skipped = [e for e in entries if e.skipped]
        if skipped:
            lines += ["Skipped:", ""]
            lines += [f"- {e.label}: {reason(e.skipped or '')}" for e in skipped]
            lines += [""]
        warnings = flagged(entries)
        if warnings:
            lines += ["Errors:", "", *warnings, ""]
        lines += [
            "<details><summary>every run</summary>",
            "",
            *details(entries),
            "",
            "</details>",
            "",
        ]
    lines += lifecycle_section(lifecycle)
    notes = {e.label.removesuffix(" + batching"): e.note for es in results.values() for e in es}
    lines += ["## The servers", ""]
    lines += [f"- **{label}**: {note}" for label, note in notes.items()]
    lines += [""]
    return "\n".join(lines)
