"""Shadow comparison before a blue-green release: the candidate answers copies of live calls
before any caller gets one of its answers.

    declaration  shadow: {percent, window_seconds, comparison, max_disagreement_rate, ...}
    run          the candidate (the related service, no traffic) is ready and smoke-tested →
                 mirroring on (`eascmd shadow NAME --to CANDIDATE --percent P`) → wait the
                 window → read the gateways' pairs → mirroring off → judge
    judge        a pair disagrees when the candidate gave no answer, another status, or an
                 answer the comparison calls different; over ``max_disagreement_rate`` (or
                 fewer than ``min_pairs`` judged) the release is refused

Comparisons: ``exact`` (same status, same bytes: the gateway's own verdict on the whole
answers, so it covers every mirrored call), ``numeric`` (both answers JSON, equal but for
numbers within ``tolerance``/``relative_tolerance``), ``json_path`` (only the values at
``paths``, numbers within tolerance). The last two judge the pairs the gateways keep (their
most recent ones); a body the gateway cut short cannot be compared and counts as disagreeing.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eas_core.sdk import FieldProblem, ShadowPair, ShadowReport
from eas_core.sdk.control import ControlClient
from eas_pipelines.json_path import MISSING, lookup, parse_json_path

# Pairs read back from the gateways for a numeric or json_path comparison.
MAX_PAIRS = 1000
# Rows of disagreeing pairs shown in the check's table.
SHOWN_DISAGREEMENTS = 5


class ShadowComparison(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["exact", "numeric", "json_path"] = "exact"
    tolerance: float = Field(default=1e-6, ge=0)
    relative_tolerance: float = Field(default=0.0, ge=0)
    paths: list[str] = Field(default_factory=list)

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            parse_json_path(path)
        return value

    @model_validator(mode="after")
    def _paths_for_json_path(self) -> ShadowComparison:
        if self.kind == "json_path" and not self.paths:
            raise FieldProblem("paths", "a json_path comparison needs at least one path")
        if self.kind != "json_path" and self.paths:
            raise FieldProblem("paths", f"only a json_path comparison takes paths, not {self.kind}")
        return self


class ShadowDeclaration(BaseModel):
    """``shadow:`` in a pipeline declaration (blue_green rollouts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: float = Field(default=100.0, gt=0, le=100)
    window_seconds: float = Field(default=30.0, gt=0, le=24 * 3600)
    comparison: ShadowComparison = Field(default_factory=ShadowComparison)
    max_disagreement_rate: float = Field(default=0.0, ge=0, le=1)
    min_pairs: int = Field(default=10, ge=1)
    # Seconds to wait after the window for copies still in flight to be answered.
    settle_seconds: float = Field(default=15.0, ge=0)


class Log(Protocol):
    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...


@dataclass
class ShadowVerdict:
    """What the window showed: counts, rate, latencies, and whether the release may go on."""

    service: str
    candidate: str
    comparison: str
    judged: int
    disagreed: int
    mirrored: int
    dropped: dict[str, int]
    live_ms: dict[str, float]
    shadow_ms: dict[str, float]
    max_rate: float
    min_pairs: int
    disagreements: list[ShadowPair] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.disagreed / self.judged if self.judged else 0.0

    @property
    def passed(self) -> bool:
        return self.judged >= self.min_pairs and self.rate <= self.max_rate

    @property
    def reason(self) -> str:
        if self.judged < self.min_pairs:
            return (
                f"only {self.judged} mirrored call(s) of {self.service} were answered in the "
                f"window; shadow.min_pairs is {self.min_pairs} (send traffic to {self.service}, "
                "lengthen shadow.window_seconds or lower shadow.min_pairs)"
            )
        verdict = "over" if self.rate > self.max_rate else "within"
        return (
            f"{self.candidate} disagreed with {self.service} on {self.disagreed} of "
            f"{self.judged} mirrored calls ({self.rate:.1%}, {verdict} "
            f"shadow.max_disagreement_rate {self.max_rate:.1%}; {self.comparison})"
        )

    def table(self) -> str:
        """The check's markdown table: the figures, then a few disagreeing pairs."""
        rows = [
            ("comparison", self.comparison),
            ("mirrored calls", str(self.mirrored)),
            ("judged pairs", str(self.judged)),
            ("disagreed", f"{self.disagreed} ({self.rate:.1%})"),
            ("max disagreement rate", f"{self.max_rate:.1%}"),
            ("dropped copies", ", ".join(f"{k} {v}" for k, v in self.dropped.items()) or "0"),
            ("live latency ms (p50 / p95)", _pair(self.live_ms)),
            ("candidate latency ms (p50 / p95)", _pair(self.shadow_ms)),
            ("verdict", "passed" if self.passed else "REFUSED"),
        ]
        lines = ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in rows]
        if self.disagreements:
            lines += [
                "",
                "| live status | live answer | candidate status | candidate answer |",
                "|---|---|---|---|",
            ]
            for p in self.disagreements[:SHOWN_DISAGREEMENTS]:
                shadow = p.shadow_body if p.shadow_status else p.shadow_error
                lines.append(
                    f"| {p.live_status} | {_cell(p.live_body[:80])} | {p.shadow_status} "
                    f"| {_cell(shadow[:80])} |"
                )
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "comparison": self.comparison,
            "mirrored": self.mirrored,
            "judged": self.judged,
            "disagreed": self.disagreed,
            "disagreement_rate": round(self.rate, 4),
            "max_disagreement_rate": self.max_rate,
            "dropped": self.dropped,
            "live_ms": self.live_ms,
            "candidate_ms": self.shadow_ms,
            "passed": self.passed,
        }


def _pair(stats: dict[str, float]) -> str:
    return f"{stats['p50']:.1f} / {stats['p95']:.1f}" if stats else "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _latency(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(len(ordered) * 0.95) - 1)]
    return {"p50": round(statistics.median(ordered), 3), "p95": round(p95, 3)}


# -- comparison -----------------------------------------------------------------------------
def _parse(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return MISSING


def _close(a: Any, b: Any, rule: ShadowComparison) -> bool:
    """Equal, numbers within tolerance, containers element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=rule.relative_tolerance, abs_tol=rule.tolerance)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rule) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rule) for k in a)
    return bool(a == b)


def agrees(pair: ShadowPair, rule: ShadowComparison) -> bool:
    """Whether the candidate's answer counts as the live one under ``rule``."""
    if pair.shadow_status == 0 or pair.shadow_status != pair.live_status:
        return False
    if rule.kind == "exact" or pair.same:
        return pair.same
    if pair.live_truncated or pair.shadow_truncated:
        return False  # cut short by the gateway: the values cannot be compared
    live, shadow = _parse(pair.live_body), _parse(pair.shadow_body)
    if live is MISSING or shadow is MISSING:
        return False
    if rule.kind == "numeric":
        return _close(live, shadow, rule)
    return all(_close(lookup(live, p), lookup(shadow, p), rule) for p in rule.paths)


def judge(report: ShadowReport, candidate: str, declaration: ShadowDeclaration) -> ShadowVerdict:
    rule = declaration.comparison
    counters = report.counters
    disagreeing = [p for p in report.pairs if not agrees(p, rule)]
    if rule.kind == "exact":
        # The gateway compared every mirrored call's whole answers: judge them all.
        judged = counters.compared + counters.failed
        disagreed = counters.disagreed + counters.failed
    else:
        judged, disagreed = len(report.pairs), len(disagreeing)
    described: str = rule.kind
    if rule.kind != "exact":
        described += f", tolerance {rule.tolerance:g}"
        if rule.relative_tolerance:
            described += f" (relative {rule.relative_tolerance:g})"
    if rule.paths:
        described += f", paths {', '.join(rule.paths)}"
    answered = [p for p in report.pairs if p.shadow_status]
    return ShadowVerdict(
        service=report.service,
        candidate=candidate,
        comparison=described,
        judged=judged,
        disagreed=disagreed,
        mirrored=counters.mirrored,
        dropped=dict(counters.dropped),
        live_ms=_latency([p.live_ms for p in report.pairs]),
        shadow_ms=_latency([p.shadow_ms for p in answered]),
        max_rate=declaration.max_disagreement_rate,
        min_pairs=declaration.min_pairs,
        disagreements=disagreeing,
    )


# -- the run --------------------------------------------------------------------------------
def run_shadow(
    client: ControlClient,
    service: str,
    candidate: str,
    declaration: ShadowDeclaration,
    log: Log,
) -> ShadowVerdict:
    """Mirror ``service``'s calls to ``candidate`` for the window, then judge the pairs.
    Mirroring is switched off whatever happens."""
    client.set_shadow(service, candidate, declaration.percent)
    try:
        client.wait_shadow_applied(service)
        log.info(
            f"mirroring {declaration.percent:g}% of {service}'s calls to {candidate} for "
            f"{declaration.window_seconds:g} s"
        )
        time.sleep(declaration.window_seconds)
    finally:
        client.shadow_off(service)
    # Off first, so no new copies start while the last ones are awaited; the gateways keep
    # what they recorded readable until the next setting.
    client.wait_shadow_applied(service)
    report = _settled(client, service, declaration.settle_seconds)
    verdict = judge(report, candidate, declaration)
    log.info(f"shadow comparison: {verdict.reason}")
    return verdict


def _settled(client: ControlClient, service: str, wait: float) -> ShadowReport:
    """The report once every copy sent has been answered or failed (at most ``wait`` s)."""
    deadline = time.monotonic() + wait
    while True:
        report = client.shadow(service, limit=MAX_PAIRS)
        c = report.counters
        if c.compared + c.failed >= c.mirrored or time.monotonic() > deadline:
            return report
        time.sleep(0.2)
