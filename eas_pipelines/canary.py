"""Canary analysis of a blue-green release step: the candidate's real traffic against the
baseline's, from the core's metrics, judged pass / fail / no data (as Kayenta does).

    declaration  canary: {window_seconds, interval_seconds, alpha, min_requests, ...}
    step         release weight W (< 100) → every ``interval_seconds`` read both services'
                 series since the step began (`GET /api/v1/services/{name}/metrics`: the
                 original is the baseline, the related service the canary; their instances
                 are kept apart) → judge each metric → a failing metric ends the step at
                 once; otherwise the verdict at the end of ``window_seconds`` stands
    metrics      error share: answers with a 5xx status among all answers, one-sided
                 two-proportion z-test (canary worse); latency: the per-step median latency
                 points of each side, one-sided Mann-Whitney U test (canary slower)
    verdict      fail   a metric is worse with p < ``alpha`` AND by more than its tolerance
                        (``max_error_share_increase``, ``max_latency_ratio``)
                 pass   every metric had enough data and none failed
                 nodata a side answered fewer than ``min_requests`` (or had fewer than
                        ``min_latency_points`` latency points); ``on_no_data`` says whether
                        that rolls back (the default) or lets the release go on

The 100 % step has no baseline traffic left, so it is never judged: the canary has passed
every earlier step by then. Reading the metrics every interval and stopping at the first
significant failure tests repeatedly; ``alpha`` defaults to 0.01 to keep false alarms rare.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from eas_core.sdk.control import ControlClient

Verdict = Literal["pass", "fail", "nodata"]
READ = ("rps", "rps_5xx", "latency_p50_ms")
SPARKS = "▁▂▃▄▅▆▇█"


class CanaryDeclaration(BaseModel):
    """``canary:`` in a pipeline declaration (blue-green rollouts only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_seconds: float = Field(default=60.0, gt=0, le=24 * 3600)
    interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    alpha: float = Field(default=0.01, gt=0, lt=0.5)
    min_requests: int = Field(default=50, ge=1)
    min_latency_points: int = Field(default=5, ge=3)
    metrics: list[Literal["error_share", "latency"]] = Field(
        default=["error_share", "latency"], min_length=1
    )
    # Absolute increase of the 5xx share (0.01 = one point of percentage) tolerated.
    max_error_share_increase: float = Field(default=0.01, ge=0, le=1)
    # Canary median latency over baseline median latency tolerated.
    max_latency_ratio: float = Field(default=1.5, ge=1)
    on_no_data: Literal["rollback", "continue"] = "rollback"


class Log(Protocol):
    def info(self, msg: str) -> Any: ...


@dataclass
class Side:
    """One service's whole-service points inside the window: (time, value) per metric."""

    service: str
    step: float
    points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def series(self, metric: str) -> list[tuple[float, float]]:
        return self.points.get(metric, [])

    @property
    def requests(self) -> int:
        return round(sum(v * self.step for _, v in self.series("rps")))

    @property
    def errors(self) -> int:
        return round(sum(v * self.step for _, v in self.series("rps_5xx")))

    @property
    def latencies(self) -> list[float]:
        """Median latency of each step that answered something."""
        answered = {t for t, v in self.series("rps") if v > 0}
        return [v for t, v in self.series("latency_p50_ms") if t in answered]


def read_side(
    source: ControlClient,
    service: str,
    start: float,
    now: float,
    metrics: tuple[str, ...] = READ,
) -> Side:
    """``service``'s points that lie wholly after ``start``: a point at time t counts what
    happened in the step before t, so one that began before the step is left out."""
    answer = source.metrics(service, metrics=list(metrics), since=f"{math.ceil(now - start) + 60}s")
    side = Side(service, answer.step)
    for series in answer.series:
        if series.instance is None:
            side.points[series.metric] = [
                (t, v) for t, v in series.points if t - answer.step >= start - 0.25 * answer.step
            ]
    return side


@dataclass(frozen=True)
class Judgement:
    metric: str
    verdict: Verdict
    baseline: float | None
    canary: float | None
    p_value: float | None
    why: str


def judge_error_share(baseline: Side, canary: Side, declared: CanaryDeclaration) -> Judgement:
    nb, nc = baseline.requests, canary.requests
    eb, ec = min(baseline.errors, nb), min(canary.errors, nc)
    if min(nb, nc) < declared.min_requests:
        return Judgement(
            "error share",
            "nodata",
            eb / nb if nb else None,
            ec / nc if nc else None,
            None,
            f"{nb} baseline and {nc} canary answers; min_requests is {declared.min_requests}",
        )
    pb, pc = eb / nb, ec / nc
    pooled = (eb + ec) / (nb + nc)
    if pooled in (0.0, 1.0):
        p_value = 1.0  # both sides all-good (or all-bad): nothing tells them apart
    else:
        z = (pc - pb) / math.sqrt(pooled * (1 - pooled) * (1 / nb + 1 / nc))
        p_value = float(stats.norm.sf(z))
    worse = pc - pb > declared.max_error_share_increase
    failed = worse and p_value < declared.alpha
    why = (
        f"canary {ec}/{nc} = {pc:.2%} vs baseline {eb}/{nb} = {pb:.2%}, "
        f"p = {p_value:.3g} (alpha {declared.alpha:g}), tolerance "
        f"+{declared.max_error_share_increase:.2%}"
    )
    return Judgement("error share", "fail" if failed else "pass", pb, pc, p_value, why)


def judge_latency(baseline: Side, canary: Side, declared: CanaryDeclaration) -> Judgement:
    lb, lc = baseline.latencies, canary.latencies
    mb = statistics.median(lb) if lb else None
    mc = statistics.median(lc) if lc else None
    if min(len(lb), len(lc)) < declared.min_latency_points:
        return Judgement(
            "latency p50 (ms)",
            "nodata",
            mb,
            mc,
            None,
            f"{len(lb)} baseline and {len(lc)} canary latency points; min_latency_points is "
            f"{declared.min_latency_points}",
        )
    assert mb is not None and mc is not None
    p_value = float(stats.mannwhitneyu(lc, lb, alternative="greater").pvalue)
    ratio = mc / mb if mb > 0 else math.inf
    failed = ratio > declared.max_latency_ratio and p_value < declared.alpha
    why = (
        f"canary median {mc:.1f} ms vs baseline {mb:.1f} ms (×{ratio:.2f}, tolerance "
        f"×{declared.max_latency_ratio:g}) over {len(lc)}/{len(lb)} points, "
        f"Mann-Whitney p = {p_value:.3g}"
    )
    return Judgement("latency p50 (ms)", "fail" if failed else "pass", mb, mc, p_value, why)


JUDGES: dict[str, Callable[[Side, Side, CanaryDeclaration], Judgement]] = {
    "error_share": judge_error_share,
    "latency": judge_latency,
}


def combine(judgements: list[Judgement]) -> Verdict:
    verdicts = {j.verdict for j in judgements}
    if "fail" in verdicts:
        return "fail"
    return "nodata" if "nodata" in verdicts else "pass"


@dataclass
class CanaryStep:
    """One judged release step: the canary's share, the verdict and what it rests on."""

    weight: int
    baseline: Side
    canary: Side
    judgements: list[Judgement]
    started: float
    # When both sides were last read: the analysis reached its verdict.
    judged: float
    # When the pipeline reports the verdict: for a failing step, only once the canary takes
    # no more traffic (eas_pipelines.rollout retires it first), so no caller is answered by
    # a refused version after the verdict; otherwise the same as ``judged``.
    decided: float = 0.0

    def __post_init__(self) -> None:
        self.decided = self.decided or self.judged

    @property
    def verdict(self) -> Verdict:
        return combine(self.judgements)

    @property
    def reason(self) -> str:
        shown = [j for j in self.judgements if j.verdict == self.verdict] or self.judgements
        return f"at {self.weight}%: " + "; ".join(f"{j.metric}: {j.why}" for j in shown)

    def table(self) -> str:
        rows = [
            f"**Canary at {self.weight}%: {self.verdict.upper()}** "
            f"({self.canary.service} vs {self.baseline.service}, "
            f"{self.judged - self.started:.0f} s)",
            "",
            "| metric | baseline | canary | p-value | verdict |",
            "|---|---|---|---|---|",
        ]
        for j in self.judgements:
            rows.append(
                f"| {j.metric} | {_shown(j.metric, j.baseline)} | {_shown(j.metric, j.canary)} "
                f"| {'—' if j.p_value is None else f'{j.p_value:.3g}'} | {j.verdict} |"
            )
        rows.append(
            f"| answers | {self.baseline.requests} | {self.canary.requests} | | |",
        )
        return "\n".join(rows)

    def chart(self) -> str:
        """Both sides' 5xx share and median latency over the window, as sparklines."""
        lines = []
        for metric, title in (("share", "5xx share"), ("latency_p50_ms", "latency p50 ms")):
            sides = [(s.service, _values(s, metric)) for s in (self.baseline, self.canary)]
            top = max((v for _, vs in sides for v in vs), default=0.0)
            lines.append(f"{title} (0 … {top:.3g})")
            for who, values in sides:
                lines.append(f"  {who:<24} {_spark(values, top)}")
        return "```\n" + "\n".join(lines) + "\n```"

    def summary(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "verdict": self.verdict,
            "baseline": self.baseline.service,
            "canary": self.canary.service,
            "baseline_answers": self.baseline.requests,
            "canary_answers": self.canary.requests,
            "started": self.started,
            "judged": self.judged,
            "decided": self.decided,
            "metrics": {
                j.metric: {
                    "verdict": j.verdict,
                    "baseline": j.baseline,
                    "canary": j.canary,
                    "p_value": j.p_value,
                    "why": j.why,
                }
                for j in self.judgements
            },
        }


def _shown(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2%}" if metric == "error share" else f"{value:.1f}"


def _values(side: Side, metric: str) -> list[float]:
    if metric == "share":
        errors = dict(side.series("rps_5xx"))
        return [errors.get(t, 0.0) / v if v > 0 else 0.0 for t, v in side.series("rps")]
    return [v for _, v in side.series(metric)]


def _spark(values: list[float], top: float) -> str:
    if not values:
        return "(no points)"
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(int(v / top * (len(SPARKS) - 1) + 0.5), 7)] for v in values)


def analyse(
    source: ControlClient,
    baseline: str,
    canary: str,
    weight: int,
    started: float,
    declared: CanaryDeclaration,
    now: float,
) -> CanaryStep:
    """Judge the step so far: both sides' points since ``started``."""
    sides = [read_side(source, name, started, now) for name in (baseline, canary)]
    judgements = [JUDGES[m](sides[0], sides[1], declared) for m in declared.metrics]
    return CanaryStep(weight, sides[0], sides[1], judgements, started, now)


def judge_step(
    source: ControlClient,
    baseline: str,
    canary: str,
    weight: int,
    declared: CanaryDeclaration,
    log: Log,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> CanaryStep:
    """Watch one step for the window; a failing verdict ends it at once."""
    started = clock()
    deadline = started + declared.window_seconds
    while True:
        sleep(min(declared.interval_seconds, max(deadline - clock(), 0.0)))
        step = analyse(source, baseline, canary, weight, started, declared, clock())
        step.judged = step.decided = clock()  # known once both sides have been read
        if step.verdict == "fail" or clock() >= deadline:
            log.info(f"canary {step.verdict}: {step.reason}")
            return step


@dataclass
class CanaryReport:
    """Every judged step of one release, the deciding one last."""

    steps: list[CanaryStep] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return self.steps[-1].verdict if self.steps else "nodata"

    @property
    def passed(self) -> bool:
        return all(s.verdict == "pass" for s in self.steps) and bool(self.steps)

    def metadata(self) -> dict[str, Any]:
        if not self.steps:
            return {}
        last = self.steps[-1]
        history = "\n".join(f"- {s.weight}%: {s.verdict}" for s in self.steps)
        return {
            "canary_verdict": last.verdict,
            "canary": dg.MetadataValue.md(last.table() + "\n\nSteps:\n\n" + history),
            "canary_chart": dg.MetadataValue.md(last.chart()),
            "canary_steps": dg.MetadataValue.json([s.summary() for s in self.steps]),
            "canary_judged_at": dg.MetadataValue.timestamp(float(last.judged)),
            "canary_decided_at": dg.MetadataValue.timestamp(float(last.decided)),
        }


__all__ = [
    "CanaryDeclaration",
    "CanaryReport",
    "CanaryStep",
    "Judgement",
    "Side",
    "analyse",
    "judge_step",
]
