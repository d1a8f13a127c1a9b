"""The ``smoke`` asset check of ``<service>/deployment``: its spec and its results.

A deployment records one check result: passed when the new version answered every smoke
request right within budget (and survived its bakes); failed with the stage that failed
(``ready`` — instances never ready, ``smoke``, ``shadow``, ``bake``, ``promote``), the
failing request and response (or the shadow comparison's table), and where the service
stands after the rollback. The same metadata goes into the run's failure, so the run page
and the asset page tell the same story.

A blue-green pipeline that declares ``canary:`` has a ``canary`` check too: the verdict of
the analysis, its per-metric table and a chart of both sides over the deciding step.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from eas_pipelines.canary import CanaryReport
from eas_pipelines.declaration import PipelineDeclaration
from eas_pipelines.rollout import Outcome, RolloutFailed
from eas_pipelines.shadow import ShadowVerdict
from eas_pipelines.smoke import Report, encode_body, label

SMOKE = "smoke"
SHADOW = "shadow"
CANARY = "canary"


def deployment_key(service: str) -> dg.AssetKey:
    return dg.AssetKey([service, "deployment"])


def model_key(service: str) -> dg.AssetKey:
    return dg.AssetKey([service, "model"])


def smoke_check_spec(declaration: PipelineDeclaration) -> dg.AssetCheckSpec:
    tests = declaration.smoke_tests
    names = ", ".join(r.name or f"requests[{i}]" for i, r in enumerate(tests.requests))
    return dg.AssetCheckSpec(
        SMOKE,
        asset=deployment_key(declaration.name),
        description=(
            f"Smoke tests through the gateway ({names}; ×{tests.repeat}, error rate ≤ "
            f"{tests.max_error_rate:.0%}). Run alone, it tests the live version."
        ),
    )


def report_metadata(report: Report | None) -> dict[str, Any]:
    if report is None:
        return {}
    out: dict[str, Any] = {"summary": dg.MetadataValue.json(report.summary())}
    if report.failing is not None:
        failing = report.failing.describe()
        out["failing_request"] = failing["request"]
        out["failing_status"] = failing["status"]
        out["failing_response"] = dg.MetadataValue.text(failing["response"])
        out["failing_problems"] = dg.MetadataValue.json(failing["problems"])
        out["failing_latency_ms"] = failing["latency_ms"]
    return out


def shadow_check_spec(declaration: PipelineDeclaration) -> dg.AssetCheckSpec | None:
    """The ``shadow`` check, for a pipeline that declares ``shadow:``."""
    shadow = declaration.shadow
    if shadow is None:
        return None
    return dg.AssetCheckSpec(
        SHADOW,
        asset=deployment_key(declaration.name),
        description=(
            f"Before any release step, the candidate answers copies of {shadow.percent:g}% of "
            f"live calls for {shadow.window_seconds:g} s; refused over "
            f"{shadow.max_disagreement_rate:.1%} disagreement ({shadow.comparison.kind}). "
            "Runs during a blue-green rollout only."
        ),
    )


def shadow_result(verdict: ShadowVerdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=SHADOW,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=shadow_metadata(verdict),
    )


def shadow_metadata(verdict: ShadowVerdict | None) -> dict[str, Any]:
    """The shadow comparison (blue-green with ``shadow:``): its table and figures."""
    if verdict is None:
        return {}
    return {
        "shadow": dg.MetadataValue.md(verdict.table()),
        "shadow_summary": dg.MetadataValue.json(verdict.summary()),
        "shadow_disagreement_rate": verdict.rate,
    }


def canary_check_spec(declaration: PipelineDeclaration) -> dg.AssetCheckSpec | None:
    """The ``canary`` check, for a pipeline that declares ``canary:``."""
    canary = declaration.canary
    if canary is None:
        return None
    steps = [w for w in declaration.rollout.steps if w < 100]
    return dg.AssetCheckSpec(
        CANARY,
        asset=deployment_key(declaration.name),
        description=(
            f"At each release step ({', '.join(f'{w}%' for w in steps)}) the candidate's real "
            f"traffic is compared with the live service's for up to "
            f"{canary.window_seconds:g} s ({', '.join(canary.metrics)}, alpha "
            f"{canary.alpha:g}); the first failing step rolls back. Runs during a blue-green "
            "rollout only."
        ),
    )


def canary_result(report: CanaryReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CANARY,
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=report.metadata(),
    )


def extra_results(
    shadow: ShadowVerdict | None, canary: CanaryReport | None
) -> list[dg.AssetCheckResult]:
    """The shadow and canary checks' results, where the rollout got that far."""
    out = [shadow_result(shadow)] if shadow else []
    if canary is not None and canary.steps:
        out.append(canary_result(canary))
    return out


def sent_body(declaration: PipelineDeclaration, request_name: str) -> str | None:
    """The body of the named smoke request, as it was sent."""
    for i, request in enumerate(declaration.smoke_tests.requests):
        if label(request, i) == request_name:
            return encode_body(request)[0].decode("utf-8", "replace")
    return None


def failure_metadata(declaration: PipelineDeclaration, failed: RolloutFailed) -> dict[str, Any]:
    out: dict[str, Any] = {
        "failed_check": failed.check,
        "reason": dg.MetadataValue.text(failed.reason),
        "rolled_back": failed.rolled_back,
        "model_uri": failed.model_uri,
    }
    out.update(report_metadata(failed.report))
    out.update(shadow_metadata(failed.shadow))
    if failed.canary is not None:
        out.update(failed.canary.metadata())
    if failed.instances:
        out["instances_not_ready"] = dg.MetadataValue.json(failed.instances)
    if failed.report is not None and failed.report.failing is not None:
        body = sent_body(declaration, failed.report.failing.request)
        if body is not None:
            out["failing_request_body"] = dg.MetadataValue.text(body)
    if failed.state is not None:
        out["live_version"] = failed.state.version
        out["latest_version"] = failed.state.latest_version
    return out


def passed_result(outcome: Outcome) -> dg.AssetCheckResult:
    passed = outcome.smoke is None or outcome.smoke.passed
    metadata = report_metadata(outcome.smoke)
    for weight, bake in outcome.bakes:
        metadata[f"bake_{weight}pct"] = dg.MetadataValue.json(bake.summary())
    metadata["version"] = outcome.state.version
    return dg.AssetCheckResult(
        check_name=SMOKE,
        passed=passed,
        # Only reached failing when the declaration says not to roll back on smoke failure.
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def failed_result(declaration: PipelineDeclaration, failed: RolloutFailed) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=SMOKE,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=failure_metadata(declaration, failed),
    )


def live_result(report: Report, version: int) -> dg.AssetCheckResult:
    """The check run on its own: the live version, tested as it serves."""
    return dg.AssetCheckResult(
        check_name=SMOKE,
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={**report_metadata(report), "version": version},
    )
