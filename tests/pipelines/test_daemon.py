"""Schedules and sensors run by a real ``dagster-daemon``, not in the test's process.

The daemon loads the code location the way ``dagster dev`` does (a workspace file naming
``eas_pipelines.definitions``, declarations from ``$EAS_PIPELINES_DIR``, the connection
from ``EAS_PIPELINES_*``), against a DAGSTER_HOME of the test's own; the runs it launches
are subprocesses too. The test reads what happened through a DagsterInstance on the same
DAGSTER_HOME, and the installation's control API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from eas_pipelines.jobs import deploy_run_config
from tests.pipelines.conftest import REPO, dagster_environment, flaky_document
from tests.pipelines.training import flaky_model
from tests.support.installation import Installation, wait_for

DAEMON = Path(sys.executable).parent / "dagster-daemon"
# The daemon must have loaded the schedule before the minute it ticks at.
DAEMON_START_MARGIN = 40.0
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}


def next_minute_after(seconds: float) -> datetime:
    """The first whole minute at least ``seconds`` from now (UTC)."""
    moment = time.time() + seconds
    return datetime.fromtimestamp(moment - moment % 60 + 60, UTC)


@pytest.fixture
def daemon_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def start_daemon(
    installation: Installation, home: Path, declarations: Path, log: Path
) -> subprocess.Popen[bytes]:
    workspace = home / "workspace.yaml"
    location = {
        "module_name": "eas_pipelines.definitions",
        "attribute": "defs",
        "location_name": "openeas",
        "working_directory": str(REPO),
    }
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
    env = dagster_environment(home, declarations, installation)
    with log.open("wb") as out:
        # A session of its own: the code server and run workers the daemon starts are its
        # children, and stopping the daemon's group stops exactly what this test started.
        return subprocess.Popen(
            [str(DAEMON), "run", "-w", str(workspace)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def runs(daemon_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(daemon_home)) as instance:
        yield instance


def finished_runs(
    instance: dg.DagsterInstance, job: str, log: Path, count: int = 1, timeout: float = 120
) -> list[dg.DagsterRun]:
    def done() -> list[dg.DagsterRun]:
        found = instance.get_runs(filters=dg.RunsFilter(job_name=job))
        return list(found) if len([r for r in found if r.status in FINISHED]) >= count else []

    try:
        return wait_for(done, timeout=timeout, interval=1.0, what=f"{count} finished {job} runs")
    except Exception:
        print(log.read_text(errors="replace")[-6000:])
        raise


def pong(installation: Installation, name: str, token: str | None) -> bool:
    answer = installation.predict(name, b"ping", token=token)
    return (answer.status_code, answer.content) == (200, b"pong")


def test_the_daemon_ticks_the_schedule_and_fires_the_new_model_sensor(
    installation: Installation,
    unique_name: str,
    tmp_path: Path,
    daemon_home: Path,
    runs: dg.DagsterInstance,
) -> None:
    name = unique_name
    store = tmp_path / "store"
    (store / "incoming").mkdir(parents=True)
    tick = next_minute_after(DAEMON_START_MARGIN)
    # Once an hour, at the minute the test waits for: one tick while it runs, so no second
    # retrain races the sensor's deploy.
    document = flaky_document(
        name,
        store,
        schedule={"cron": f"{tick.minute} * * * *", "enabled": True},
        sensors={"new_model": {"prefix": "incoming", "interval_seconds": 1, "enabled": True}},
    )
    declarations = tmp_path / "pipelines"
    declarations.mkdir()
    (declarations / f"{name}.pipeline.yaml").write_text(yaml.safe_dump(document))
    log = tmp_path / "daemon.log"
    daemon = start_daemon(installation, daemon_home, declarations, log)
    try:
        # The schedule ticks: retrain, store, deploy — the first version serves.
        wait = tick.timestamp() - time.time() + 90
        (scheduled,) = finished_runs(runs, f"{name}_retrain_and_deploy", log, timeout=wait)
        assert scheduled.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-4000:]
        assert scheduled.tags.get("dagster/schedule_name") == f"{name}_schedule"
        served = installation.client.describe_service(name)
        assert served.current_version == served.latest_version
        assert pong(installation, name, served.access_token)

        # A broken model lands in the watched prefix (whole, by one rename): the sensor
        # deploys it, its smoke test fails, the run rolls back to the scheduled version.
        staged = flaky_model(tmp_path, "broken", fail_after=0)
        dropped = store / "incoming" / staged.name
        staged.rename(dropped)
        (deployed,) = finished_runs(runs, f"{name}_deploy", log, timeout=120)
        assert deployed.status == dg.DagsterRunStatus.FAILURE
        assert deployed.tags.get("dagster/sensor_name") == f"{name}_new_model"
        assert deployed.run_config == deploy_run_config(name, str(dropped))
        after = installation.client.describe_service(name)
        assert after.current_version == served.current_version
        assert after.latest_version > served.latest_version
        assert pong(installation, name, served.access_token)

        # Touching the model starts nothing: the sensor keys on its bytes. Bounded by a few
        # of the daemon's sensor evaluations (one per second asked, the daemon's loop ~5 s).
        os.utime(dropped, (time.time() + 60, time.time() + 60))
        time.sleep(12)
        assert len(runs.get_runs(filters=dg.RunsFilter(job_name=f"{name}_deploy"))) == 1
    finally:
        stop(daemon)
