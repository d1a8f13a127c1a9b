"""The pure parts of the pipelines, with plain values: judging answers, the new-model cursor,
the model stores on a real directory, the connection resource's fallbacks, and the
run-failure webhook against a real HTTP server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pytest

from eas_core.errors import EASError
from eas_core.sdk.control import ClientConfig
from eas_pipelines.assets import import_callable
from eas_pipelines.declaration import BakeThresholds, Expectation, SmokeTests, parse_declaration
from eas_pipelines.factory import build_definitions
from eas_pipelines.jobs import deploy_run_config
from eas_pipelines.resources import EASResource
from eas_pipelines.rollout import default_previous
from eas_pipelines.sensors import new_artefacts
from eas_pipelines.smoke import (
    Attempt,
    Prober,
    Report,
    differences,
    judge,
    judge_bake,
    lookup,
    percentile,
    probe_for,
    run_smoke_tests,
)
from eas_pipelines.stores import LocalModelStore, StoredArtefact, pack
from tests.pipelines.conftest import heart_document


def expect(**fields: Any) -> Expectation:
    return Expectation.model_validate(fields)


def test_json_answers_are_judged_within_the_tolerance() -> None:
    rule = expect(json=[{"p_0": 0.9, "p_1": 0.1}], tolerance=0.05)
    assert judge(rule, 200, b'[{"p_0": 0.93, "p_1": 0.07}]') == []
    assert judge(rule, 200, b'[{"p_0": 0.2, "p_1": 0.8}]') == [
        "$[0].p_0: expected 0.9 ± 0.05, got 0.2",
        "$[0].p_1: expected 0.1 ± 0.05, got 0.8",
    ]
    assert judge(rule, 200, b"[]") == ["$: expected 1 items, got 0"]
    assert judge(rule, 503, b"no instance") == [
        "status: expected 200, got 503",
        "body: not JSON: 'no instance'",
    ]


def test_json_paths_and_exact_bodies_are_judged() -> None:
    rule = expect(
        json_path=[
            {"path": "$[0].p_1", "min": 0.9},
            {"path": "$[0]['p_0']", "max": 0.1},
            {"path": "$[0].label", "matches": "^sick$"},
            {"path": "$[1]", "exists": False},
        ]
    )
    assert judge(rule, 200, b'[{"p_0": 0.02, "p_1": 0.98, "label": "sick"}]') == []
    problems = judge(rule, 200, b'[{"p_0": 0.5, "p_1": 0.5}, {}]')
    assert problems == [
        "$[0].p_1: expected ≥ 0.9, got 0.5",
        "$[0]['p_0']: expected ≤ 0.1, got 0.5",
        "$[0].label: missing",
        "$[1]: expected absent, got {}",
    ]
    assert judge(expect(body="pong"), 200, b"pong") == []
    assert judge(expect(body="pong", status=200), 500, b"broken") == [
        "status: expected 200, got 500",
        "body: expected 'pong', got 'broken'",
    ]


def test_lookup_and_differences_handle_nesting() -> None:
    document = {"outputs": [{"scores": [0.1, 0.9]}]}
    assert lookup(document, "$.outputs[0].scores[-1]") == 0.9
    assert differences({"a": [1, 2]}, {"a": [1, 2], "b": 3}, 0) == ["$.b: unexpected"]
    assert differences(True, 1, 0.5) == ["$: expected True, got 1"]


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([], 99) == 0.0


def attempt(status: int, latency: float = 1.0, ok: bool = True) -> Attempt:
    return Attempt("r", status, b"", latency, () if ok else ("wrong",))


def test_bake_thresholds_judge_5xx_share_errors_and_latency() -> None:
    report = Report([attempt(200)] * 18 + [attempt(500, ok=False)] * 2)
    thresholds = BakeThresholds.model_validate(
        {"max_5xx_share": 0.05, "max_errors": 5, "latency": {"percentile": 90, "budget_ms": 0.5}}
    )
    assert judge_bake(report, thresholds) == [
        "5xx share 10.0% over the threshold of 5.0% (20 requests)",
        "bake: p90 latency 1.0 ms over the budget of 0.5 ms",
    ]


def test_the_new_model_cursor_sees_each_model_once_by_its_digest() -> None:
    def artefact(key: str, modified: float, digest: str) -> StoredArtefact:
        return StoredArtefact(uri=f"/s/{key}", key=key, modified=modified, size=1, digest=digest)

    old, a = artefact("old", 1.0, "d-old"), artefact("a", 5.0, "d-a")
    fresh, cursor = new_artefacts([old, a], None)
    assert fresh == [a]  # first evaluation: only the newest, history is not replayed
    assert json.loads(cursor) == {"digests": ["d-old", "d-a"]}
    assert new_artefacts([old, a], cursor)[0] == []
    touched = artefact("a", 50.0, "d-a")  # a new mtime, the same bytes
    assert new_artefacts([old, touched], cursor)[0] == []
    copy = artefact("copy-of-a", 60.0, "d-a")  # the same bytes under another name
    assert new_artefacts([old, a, copy], cursor)[0] == []
    b, b_again = artefact("b", 5.0, "d-b"), artefact("b2", 7.0, "d-b")
    fresh, cursor = new_artefacts([old, a, b, b_again], cursor)
    assert fresh == [b_again]  # new bytes: one artefact, the newest carrying them
    rewritten = artefact("a", 70.0, "d-a2")  # new bytes written over an old file
    fresh, cursor = new_artefacts([old, rewritten, b, b_again], cursor)
    assert fresh == [rewritten]
    assert new_artefacts([old, rewritten, b, b_again], cursor)[0] == []
    assert new_artefacts([], None) == ([], '{"digests": []}')
    # The time-keyed cursor of earlier releases: what it had reached counts as seen.
    assert new_artefacts([old, a, b], '{"t": 5.0, "keys": ["a"]}')[0] == []
    assert new_artefacts([old, a, rewritten], '{"t": 5.0, "keys": ["a"]}')[0] == [rewritten]


def test_the_local_store_digests_content_not_file_times(tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"weights")
    store = LocalModelStore(tmp_path / "store", "trained")
    first, second = store.put(model, "svc"), store.put(model, "svc")
    assert first.digest == second.digest  # identical bytes re-uploaded
    seen, cursor = new_artefacts(store.list(""), None)
    assert len(seen) == 1

    os.utime(first.uri, (time.time() + 100, time.time() + 100))  # touched
    assert store.list("")[0].modified != first.modified
    assert new_artefacts(store.list(""), cursor)[0] == []
    store.put(model, "svc")
    assert new_artefacts(store.list(""), cursor)[0] == []

    model.write_bytes(b"new weights")
    third = store.put(model, "svc")
    fresh, cursor = new_artefacts(store.list(""), cursor)
    assert [a.uri for a in fresh] == [third.uri]
    assert new_artefacts(store.list(""), cursor)[0] == []


def test_the_local_store_gives_every_model_its_own_read_only_path(tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"weights")
    store = LocalModelStore(tmp_path / "store", "trained")

    first, second = store.put(model, "svc"), store.put(model, "svc")

    assert first.uri != second.uri  # the same bytes trained twice are two models
    assert Path(first.uri).read_bytes() == b"weights"
    assert Path(first.uri).name == "svc.joblib"
    assert not Path(first.uri).stat().st_mode & 0o222
    assert first.key.startswith("trained/")
    assert store.list("") == sorted([first, second], key=lambda a: a.key)
    assert store.list("incoming") == []


def test_a_directory_artefact_is_packed_reproducibly(tmp_path: Path) -> None:
    package = tmp_path / "package"
    (package / "sub").mkdir(parents=True)
    (package / "app.py").write_text("print('hi')\n")
    (package / "sub" / "data.txt").write_text("x")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")

    one = pack(package, tmp_path / "one.tar.gz").read_bytes()
    (package / "app.py").touch()  # a new mtime, same bytes
    two = pack(package, tmp_path / "two.tar.gz").read_bytes()

    assert one == two
    with tarfile.open(tmp_path / "one.tar.gz") as tar:  # the caches a run leaves are not in it
        assert tar.getnames() == ["app.py", "sub", "sub/data.txt"]
    stored = LocalModelStore(tmp_path / "store").put(package, "svc")
    assert stored.uri.endswith("/svc.tar.gz")


def test_the_connection_comes_from_fields_then_environment_then_eas_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("ENDPOINT", "ACCESS_KEY_ID", "ACCESS_KEY_SECRET", "GATEWAY"):
        monkeypatch.delenv(f"EAS_PIPELINES_{name}", raising=False)
    config_file = tmp_path / "eas.config"
    ClientConfig("saved-id", "saved-secret", "http://saved:8000").save(config_file)
    monkeypatch.setenv("EAS_CONFIG", str(config_file))

    assert EASResource().config() == ClientConfig("saved-id", "saved-secret", "http://saved:8000")
    monkeypatch.setenv("EAS_PIPELINES_ENDPOINT", "http://env:8000")
    monkeypatch.setenv("EAS_PIPELINES_ACCESS_KEY_ID", "env-id")
    assert EASResource().config() == ClientConfig("env-id", "saved-secret", "http://env:8000")
    assert EASResource(access_key_id="field-id").config().access_key_id == "field-id"

    assert EASResource().gateway_url("http://gw:8080/api/predict/svc") == "http://gw:8080"
    monkeypatch.setenv("EAS_PIPELINES_GATEWAY", "http://lb/")
    assert EASResource().gateway_url("http://gw:8080/api/predict/svc") == "http://lb"

    monkeypatch.setenv("EAS_CONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("EAS_PIPELINES_ENDPOINT")
    with pytest.raises(EASError, match="EAS_PIPELINES_ENDPOINT"):
        EASResource().config()


def test_the_previous_version_is_what_the_deployment_recorded_else_the_one_before() -> None:
    assert default_previous(5, {"live_version": 5, "previous_version": 2}) == 2
    assert default_previous(5, {"live_version": 4, "previous_version": 2}) == 4
    assert default_previous(1, None) is None


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Hook.received
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_a_failed_run_is_posted_to_the_webhook(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    document = heart_document("notified", tmp_path, sensors={"run_failure": {"webhook": url}})
    eas = EASResource(endpoint="http://127.0.0.1:9", access_key_id="i", access_key_secret="s")
    defs = build_definitions([parse_declaration(document, base_dir=tmp_path)], eas)
    with dg.instance_for_test() as instance:
        # Fails at once: nothing was trained and no model_uri is given.
        result = defs.resolve_job_def("notified_deploy").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not result.success
        failure = result.get_run_failure_event()
        sensor = defs.resolve_sensor_def("notified_run_failure")
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
        ).for_run_failure()
        sensor(context)  # type: ignore[call-arg]

    [payload] = received
    assert payload["service"] == "notified"
    assert payload["job"] == "notified_deploy"
    assert payload["run_id"] == result.run_id
    assert payload["tags"]["eas/service"] == "notified"


def test_the_deploy_run_config_is_what_the_deploy_job_takes(tmp_path: Path) -> None:
    """What the new-model sensor and the Launchpad hand to `<service>_deploy`."""
    document = heart_document("configured", tmp_path)
    eas = EASResource(endpoint="http://127.0.0.1:9", access_key_id="i", access_key_secret="s")
    defs = build_definitions([parse_declaration(document, base_dir=tmp_path)], eas)
    job = defs.resolve_job_def("configured_deploy")
    config = deploy_run_config("configured", "/models/m.pmml")
    validated = dg.validate_run_config(job, config)
    assert validated["ops"]["configured__deployment"]["config"] == {"model_uri": "/models/m.pmml"}
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, deploy_run_config("other_service", "/models/m.pmml"))


class _Service(BaseHTTPRequestHandler):
    """A stand-in processor behind a "gateway": ``slow`` sleeps, ``flaky`` fails every other
    request, anything else answers "pong"."""

    calls: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).calls += 1
        if body == b"slow":
            time.sleep(0.05)
        status = 500 if body == b"flaky" and self.calls % 2 == 0 else 200
        self.send_response(status)
        self.send_header("content-length", "4")
        self.end_headers()
        self.wfile.write(b"pong")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def smoke(requests: list[dict[str, Any]], **budgets: Any) -> SmokeTests:
    return SmokeTests.model_validate({"requests": requests, **budgets})


def test_smoke_tests_fail_on_latency_and_error_budgets(gateway: str) -> None:
    pong = {"expect": {"body": "pong"}}
    with Prober(gateway, "svc", "token", timeout=5) as prober:
        fast = run_smoke_tests(prober, smoke([{"body": "hi", **pong}], repeat=3))
        slow = run_smoke_tests(
            prober, smoke([{"name": "slow", "body": "slow", "latency_ms": 10, **pong}])
        )
        overall = run_smoke_tests(
            prober, smoke([{"body": "slow", **pong}], latency={"percentile": 50, "budget_ms": 10})
        )
        tolerated = run_smoke_tests(
            prober, smoke([{"body": "flaky", **pong}], repeat=4, max_error_rate=0.5)
        )
        strict = run_smoke_tests(prober, smoke([{"body": "flaky", **pong}], repeat=4))

    assert fast.passed and len(fast.attempts) == 3
    assert [f.split(" ms")[0].rsplit(" ", 1)[0] for f in slow.failures] == ["slow: latency"]
    assert slow.failing is not None and slow.failing.request == "slow"
    assert overall.failures[0].startswith("smoke tests: p50 latency")
    assert tolerated.passed and tolerated.errors == 2
    assert strict.failures[0].startswith("error rate 50.0% over the budget of 0.0%")
    assert strict.failing is not None and strict.failing.status == 500


def test_a_bake_probe_stops_at_the_first_breach(gateway: str) -> None:
    tests = smoke([{"body": "flaky", "expect": {"body": "pong"}}])
    with Prober(gateway, "svc", None, timeout=5) as prober:
        started = time.monotonic()
        report = probe_for(prober, tests, 30, 0.01, BakeThresholds(max_errors=0))
    assert time.monotonic() - started < 5
    assert report.failures == ["1 errors, more than the threshold of 0"]
    assert len(report.attempts) <= 2


TRAIN = """\
from pathlib import Path

from helper import ACCURACY  # a module beside this one


def train(output_dir):
    model = Path(output_dir) / "model.json"
    model.write_text('{"answer": "pong"}')
    return model, {"accuracy": ACCURACY}
"""


def test_train_resolves_beside_the_pipeline_file_outside_the_repository(tmp_path: Path) -> None:
    """A pipeline under $EAS_PIPELINES_DIR, not in the repository, names `train: mytrain:train`
    for the mytrain.py beside it: the model asset trains with it, run from another directory."""
    pipelines = tmp_path / "pipelines" / "echo"
    pipelines.mkdir(parents=True)
    (pipelines / "mytrain.py").write_text(TRAIN)
    (pipelines / "helper.py").write_text("ACCURACY = 0.75\n")
    document = heart_document("outside", tmp_path / "store", train="mytrain:train")
    (pipelines / "pipeline.yaml").write_text(json.dumps(document))
    script = (
        "import dagster as dg\n"
        "from eas_pipelines.definitions import defs\n"
        "job = defs.resolve_implicit_global_asset_job_def()\n"
        "with dg.instance_for_test() as instance:\n"
        "    result = job.execute_in_process(instance=instance,"
        " asset_selection=[dg.AssetKey(['outside', 'model'])])\n"
        "    [m] = result.asset_materializations_for_node('outside__model')\n"
        "    print(m.metadata['metric_accuracy'].value)\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environment = {**os.environ, "EAS_PIPELINES_DIR": str(tmp_path / "pipelines")}
    ran = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=environment,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip().splitlines()[-1] == "0.75"


def test_a_train_module_found_nowhere_names_both_places(tmp_path: Path) -> None:
    with pytest.raises(
        EASError, match=rf"train: cannot import 'nowhere_to_be_found' from {tmp_path}"
    ):
        import_callable("nowhere_to_be_found:train", tmp_path)
