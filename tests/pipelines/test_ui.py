"""The Dagster UI for real: dagster-webserver serving workspace.yaml, headless Chromium on the
deploy job's Launchpad, a run launched with a model_uri that succeeds against the installation.

The webserver runs on loopback with its own DAGSTER_HOME whose instance launches each run as a
subprocess (DefaultRunLauncher, no daemon needed). Its environment points the pipelines at the
test installation. A screenshot of the finished run goes to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from eas_pipelines.jobs import deploy_run_config
from tests.pipelines.conftest import REPO
from tests.support.installation import Installation, free_port, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = REPO / "test-artifacts" / "dagster-launchpad-run.png"
SERVICE = "heart_disease"  # the example pipeline, as workspace.yaml loads it
INSTANCE_CONFIG = """\
run_launcher:
  module: dagster.core.launcher
  class: DefaultRunLauncher
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""
LOCATION_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
EDITOR_VALUE = "document.querySelector('.CodeMirror').CodeMirror.getValue()"
RUN_QUERY = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    answer = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=10)
    answer.raise_for_status()
    data: dict[str, Any] = answer.json()["data"]
    return data


@pytest.fixture
def webserver(installation: Installation, tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EAS_", "DAGSTER_"))}
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "EAS_PIPELINES_ENDPOINT": installation.controller_url,
            "EAS_PIPELINES_ACCESS_KEY_ID": installation.client.key.id,
            "EAS_PIPELINES_ACCESS_KEY_SECRET": installation.client.key.secret,
            "EAS_PIPELINES_GATEWAY": installation.gateway_url,
        }
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]
    with open(tmp_path / "webserver.log", "wb") as log:
        process = subprocess.Popen(
            [*command, "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server and run processes share its group
        )
    try:
        wait_for(
            lambda: any(
                e["name"] == "openeas" and e["loadStatus"] == "LOADED"
                for e in graphql(url, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
            ),
            timeout=120,
            interval=0.5,
            what="dagster-webserver to load the openeas code location",
        )
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_deploy_launched_from_the_launchpad_succeeds(
    installation: Installation,
    webserver: str,
    models: dict[str, Path],
    cleanup: Any,
) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "headless Chromium is needed: apt-get install -y chromium"
    cleanup(SERVICE)
    model_uri = str(models["good"])
    config = f"ops:\n  {SERVICE}__deployment:\n    config:\n      model_uri: {model_uri}\n"
    # What is typed into the Launchpad is the run config the sensors would launch.
    assert yaml.safe_load(config) == deploy_run_config(SERVICE, model_uri)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # A first visit opens a newsletter dialog whenever it likes: dismiss it if it does.
            page.add_locator_handler(
                page.get_by_role("button", name="Skip"), lambda skip: skip.click()
            )
            page.goto(f"{webserver}/locations/openeas/jobs/{SERVICE}_deploy/playground")
            page.wait_for_selector(".CodeMirror", timeout=60_000)
            # The Launchpad fills the editor with the job's default config once it has loaded
            # it: type only after that, or the default overwrites what was typed.
            page.wait_for_function(f"() => {EDITOR_VALUE}.length > 0", timeout=60_000)
            for _ in range(3):  # a dialog opening mid-typing steals the keys: type again
                page.locator(".CodeMirror").click()
                page.keyboard.press("Control+A")
                page.keyboard.insert_text(config)
                if page.evaluate(f"() => {EDITOR_VALUE}") == config:
                    break
            assert page.evaluate(f"() => {EDITOR_VALUE}") == config
            page.get_by_text("No errors").wait_for(timeout=30_000)  # the config form validated it
            page.get_by_role("button", name="Launch Run").click()

            page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}"), timeout=30_000)
            found = re.search(r"/runs/([0-9a-f-]{36})", page.url)
            assert found is not None
            run_id = found.group(1)
            status = wait_for(
                lambda: (
                    s
                    if (s := graphql(webserver, RUN_QUERY, id=run_id)["runOrError"].get("status"))
                    in ("SUCCESS", "FAILURE", "CANCELED")
                    else None
                ),
                timeout=180,
                interval=1,
                what=f"run {run_id} to finish",
            )
            page.reload()
            if status == "SUCCESS":  # the run page shows it too
                page.get_by_text("RUN_SUCCESS").first.wait_for(timeout=30_000)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()

    assert status == "SUCCESS"
    info = installation.eascmd_json("desc", SERVICE)
    assert info["Status"] == "Running"
    assert info["ServiceConfig"]["model_path"] == model_uri
