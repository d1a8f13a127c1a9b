"""Shadow comparison in a blue-green pipeline: the candidate answers mirrored copies of live
calls before any caller gets one of its answers; agreeing, it is released and promoted;
disagreeing over the declared rate, it is refused and deleted, the run fails, and the check
says by how much. The comparison rules themselves are checked on plain pairs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from eas_core.sdk import ShadowPair
from eas_pipelines.declaration import DeclarationError, parse_declaration
from eas_pipelines.factory import build_definitions
from eas_pipelines.resources import EASResource
from eas_pipelines.shadow import ShadowComparison, agrees
from tests.pipelines.test_rollouts import deploy, failure_metadata, related_of
from tests.support.installation import PROCESSORS, Installation

CYCLE = 10  # the load sends x = 1 … 10 over and over


def evaluation(result: dg.ExecuteInProcessResult, check: str) -> Any:
    [found] = [e for e in result.get_asset_check_evaluations() if e.check_name == check]
    return found


def linear_model(directory: Path, label: str, **model: Any) -> Path:
    path = directory / f"linear-{label}.json"
    path.write_text(json.dumps({"name": "v1", "scale": 1.0, **model}))
    return path


def linear_document(name: str, store: Path, shadow: dict[str, Any]) -> dict[str, Any]:
    return {
        "service": {
            "name": name,
            "processor_type": "python",
            "processor_path": str(PROCESSORS / "linear"),
            "processor_entry": "app.py",
            "metadata": {"instance": 1, "cpu": 0.1, "memory": 128},
        },
        "train": "tests.pipelines.training:train_flaky",
        "store": {"kind": "local", "path": str(store)},
        "smoke_tests": {"requests": [{"name": "one", "body": "1"}]},
        "rollout": {"strategy": "blue_green", "steps": [100], "ready_timeout_seconds": 90},
        "shadow": shadow,
    }


@dataclass
class Callers:
    """What a steady caller of the original endpoint got: (x, status, answer) per call."""

    answers: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)

    def models(self) -> set[str]:
        return {body.get("model", "?") for _, _, body in self.answers}


@contextmanager
def callers(
    installation: Installation, name: str, max_seconds: float = 240, max_calls: int = 20_000
) -> Iterator[Callers]:
    """One caller sending x = 1 … 10 in turn, bounded in time and count."""
    token = installation.client.describe_service(name).access_token
    url = f"{installation.gateway_url}/api/predict/{name}"
    seen = Callers()
    stop = threading.Event()
    deadline = time.monotonic() + max_seconds

    def run() -> None:
        with httpx.Client(headers={"Authorization": token}, timeout=30) as http:
            i = 0
            while not stop.is_set() and time.monotonic() < deadline and i < max_calls:
                x = float(i % CYCLE + 1)
                answer = http.post(url, content=str(x))
                body = answer.json() if answer.status_code == 200 else {"error": answer.text}
                seen.answers.append((x, answer.status_code, body))
                i += 1
                time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=60)


def test_an_identical_candidate_agrees_and_is_promoted(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    name = cleanup(unique_name)
    shadow = {"percent": 50, "window_seconds": 3, "min_pairs": 5}
    declaration = parse_declaration(linear_document(name, tmp_path / "store", shadow))
    defs = build_definitions([declaration], eas)
    assert deploy(defs, dagster_instance, name, linear_model(tmp_path, "a")).success
    with callers(installation, name) as seen:
        # The same model under another URI: a new version whose every answer is the same.
        result = deploy(defs, dagster_instance, name, linear_model(tmp_path, "b"))
    assert result.success, failure_metadata(result)
    assert evaluation(result, "smoke").passed
    metadata = {k: v.value for k, v in evaluation(result, "shadow").metadata.items()}
    assert evaluation(result, "shadow").passed
    summary = metadata["shadow_summary"]
    assert summary["disagreed"] == 0 and summary["judged"] >= 5 and summary["passed"]
    assert metadata["shadow_disagreement_rate"] == 0.0
    assert "| disagreed | 0 (0.0%) |" in metadata["shadow"]
    assert related_of(installation, name) == []
    assert installation.client.describe_service(name).current_version == 2
    assert seen.answers and all(status == 200 for _, status, _ in seen.answers)
    # Selected alone, the smoke check tests the live version; the shadow check has nothing to
    # compare outside a rollout and yields nothing rather than a made-up verdict.
    deployment = dg.AssetKey([name, "deployment"])
    for check, expected in (("smoke", [("smoke", True)]), ("shadow", [])):
        alone = dg.materialize(
            [defs.resolve_assets_def(deployment)],
            selection=dg.AssetSelection.checks(dg.AssetCheckKey(deployment, check)),
            instance=dagster_instance,
            raise_on_error=False,
        )
        assert alone.success
        found = [(e.check_name, e.passed) for e in alone.get_asset_check_evaluations()]
        assert found == expected


def test_a_changed_candidate_is_refused_and_no_caller_gets_its_answers(
    installation: Installation,
    eas: EASResource,
    dagster_instance: dg.DagsterInstance,
    cleanup: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    name = cleanup(unique_name)
    shadow = {
        "percent": 100,
        "window_seconds": 3,
        "min_pairs": 10,
        "comparison": {"kind": "json_path", "paths": ["$.y"], "tolerance": 1e-9},
        "max_disagreement_rate": 0.05,
    }
    declaration = parse_declaration(linear_document(name, tmp_path / "store", shadow))
    defs = build_definitions([declaration], eas)
    assert deploy(defs, dagster_instance, name, linear_model(tmp_path, "a")).success
    with callers(installation, name) as seen:
        # Answers y + 1 for x = 5 and 10: a fifth of the calls the load sends.
        changed = linear_model(tmp_path, "b", name="v2", changed_every=5)
        result = deploy(defs, dagster_instance, name, changed)
        time.sleep(0.5)  # a few calls after the refusal too
    assert not result.success
    failure = failure_metadata(result)
    assert failure["failed_check"] == "shadow"
    assert "shadow.max_disagreement_rate" in failure["reason"]
    rate = failure["shadow_disagreement_rate"]
    print(f"\ndisagreement rate of the changed model: {rate:.1%} ({failure['shadow_summary']})")
    assert 0.1 <= rate <= 0.3, failure["shadow_summary"]  # the expected share: 2 in 10
    assert "REFUSED" in failure["shadow"]
    shadow_check = evaluation(result, "shadow")
    assert not shadow_check.passed and "REFUSED" in shadow_check.metadata["shadow"].value
    # The candidate is gone; the live version never changed; no caller got a v2 answer.
    assert related_of(installation, name) == []
    assert installation.client.describe_service(name).current_version == 1
    assert len(seen.answers) > 20
    assert all(status == 200 for _, status, _ in seen.answers), seen.answers[:5]
    assert seen.models() == {"v1"}
    assert all(body["y"] == x for x, _, body in seen.answers)
    assert installation.client.shadow(name).setting is None


def pair(live: str, shadow: str, **fields: Any) -> ShadowPair:
    values = {
        "Time": 0.0,
        "LiveStatus": 200,
        "ShadowStatus": 200,
        "LiveMs": 1.0,
        "ShadowMs": 1.0,
        "Same": live == shadow,
        "LiveBody": live,
        "ShadowBody": shadow,
        **fields,
    }
    return ShadowPair.model_validate(values)


def test_comparisons_judge_pairs_by_their_rules() -> None:
    exact = ShadowComparison()
    numeric = ShadowComparison(kind="numeric", tolerance=0.01)
    path = ShadowComparison(kind="json_path", paths=["$.y"], tolerance=0.01)
    near = pair('{"y": 1.0, "m": "a"}', '{"y": 1.005, "m": "a"}')
    assert not agrees(near, exact)
    assert agrees(near, numeric) and agrees(near, path)
    other_label = pair('{"y": 1.0, "m": "a"}', '{"y": 1.0, "m": "b"}')
    assert not agrees(other_label, numeric) and agrees(other_label, path)
    assert not agrees(pair('{"y": 1}', '{"y": 1.5}'), path)
    assert not agrees(pair('{"y": 1}', '{"y": 1}', ShadowStatus=500), numeric)
    assert not agrees(pair("1", "", ShadowStatus=0, ShadowError="timed out"), numeric)
    assert not agrees(pair('{"y": 1', '{"y": 1', Same=False, LiveTruncated=True), numeric)
    assert agrees(pair("[1, 2]", "[1.001, 2]"), numeric)
    assert not agrees(pair("[1, 2]", "[1, 2, 3]"), numeric)


@pytest.mark.parametrize(
    ("shadow", "rollout", "message"),
    [
        ({"percent": 0}, "blue_green", "shadow.percent: "),
        ({"comparison": {"kind": "json_path"}}, "blue_green", "shadow.comparison.paths: "),
        ({"comparison": {"paths": ["$.y"]}}, "blue_green", "shadow.comparison.paths: only"),
        ({"comparison": {"kind": "json_path", "paths": ["y"]}}, "blue_green", "'$'"),
        ({"window": 3}, "blue_green", "shadow.window: "),
        ({}, "all_at_once", "shadow: needs rollout strategy blue_green"),
    ],
)
def test_a_bad_shadow_declaration_is_an_error_naming_the_field(
    tmp_path: Path, shadow: dict[str, Any], rollout: str, message: str
) -> None:
    document = linear_document("svc", tmp_path, shadow)
    document["rollout"] = {"strategy": rollout}
    with pytest.raises(DeclarationError) as raised:
        parse_declaration(document)
    assert any(message in e for e in raised.value.errors), raised.value.errors


def test_a_shadow_declaration_adds_the_shadow_check_and_others_do_not(tmp_path: Path) -> None:
    shadowed = linear_document("with_shadow", tmp_path, {"window_seconds": 5})
    plain = linear_document("without_shadow", tmp_path, {})
    del plain["shadow"]
    defs = build_definitions([parse_declaration(shadowed), parse_declaration(plain)])
    checks = defs.resolve_asset_graph().asset_check_keys
    for service, expected in (("with_shadow", True), ("without_shadow", False)):
        key = dg.AssetCheckKey(dg.AssetKey([service, "deployment"]), "shadow")
        assert (key in checks) is expected
        assert dg.AssetCheckKey(dg.AssetKey([service, "deployment"]), "smoke") in checks
