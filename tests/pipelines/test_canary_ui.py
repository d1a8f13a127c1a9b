"""The canary verdict in the Dagster UI: a bad model's canary deploy is run against a Dagster
instance on disk, then dagster-webserver serves that instance and headless Chromium opens the
``canary`` check of ``<service>/deployment``; the verdict table must be on the page. A
screenshot goes to test-artifacts/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from eas_pipelines.declaration import PipelineDeclaration
from eas_pipelines.factory import build_definitions
from tests.pipelines.conftest import REPO, dagster_environment
from tests.pipelines.test_canary import (  # the module's installation, started once more here
    canary_document,
    canary_model,
    eas_fast,
    fast_metrics,
    service,
)
from tests.pipelines.test_rollouts import deploy
from tests.pipelines.test_ui import CHROMIUM, CHROMIUM_ARGS, LOCATION_QUERY, graphql
from tests.support.installation import Installation, free_port, wait_for
from tests.support.load import SteadyLoad

__all__ = ["eas_fast", "fast_metrics", "service"]  # fixtures, used by name

SCREENSHOT = REPO / "test-artifacts" / "dagster-canary-check.png"
INSTANCE_CONFIG = "telemetry:\n  enabled: false\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "dagster_home"
    path.mkdir()
    (path / "dagster.yaml").write_text(INSTANCE_CONFIG)
    return path


def serve(home: Path, declarations: Path, installation: Installation) -> tuple[str, Any]:
    env = dagster_environment(home, declarations, installation)
    port = free_port()
    command = [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]
    with open(home / "webserver.log", "wb") as log:
        process = subprocess.Popen(
            [*command, "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return f"http://127.0.0.1:{port}", process


def test_the_canary_verdict_table_shows_on_the_asset_check(
    fast_metrics: Installation,
    eas_fast: Any,
    declare: Callable[[dict[str, Any]], PipelineDeclaration],
    service: str,
    home: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "headless Chromium is needed: apt-get install -y chromium"
    name = service
    document = canary_document(name, tmp_path / "store")
    declarations = tmp_path / "pipelines"
    declarations.mkdir()
    (declarations / "pipeline.yaml").write_text(yaml.safe_dump(document))
    defs = build_definitions([declare(document)], eas_fast)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert deploy(defs, instance, name, canary_model(tmp_path, "v1")).success
        token = fast_metrics.client.describe_service(name).access_token
        url = f"{fast_metrics.gateway_url}/api/predict/{name}"
        with SteadyLoad(url, token, b"ping", threads=4, max_seconds=120) as load:
            load.next_calls(50)
            bad = deploy(defs, instance, name, canary_model(tmp_path, "v2", error_every=20))
        assert not bad.success

    webserver, process = serve(home, declarations, fast_metrics)
    try:
        wait_for(
            lambda: any(
                e["name"] == "openeas" and e["loadStatus"] == "LOADED"
                for e in graphql(webserver, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
            ),
            timeout=120,
            interval=0.5,
            what="dagster-webserver to load the openeas code location",
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.add_locator_handler(
                    page.get_by_role("button", name="Skip"), lambda skip: skip.click()
                )
                page.goto(f"{webserver}/assets/{name}/deployment?view=checks&checkDetail=canary")
                try:
                    page.get_by_text("canary_verdict", exact=True).wait_for(timeout=60_000)
                    # The first row, ``canary``, is the verdict table: open its markdown.
                    page.get_by_text("[Show Markdown]").first.click()
                    page.get_by_text("Canary at 5%: FAIL").first.wait_for(timeout=30_000)
                    page.get_by_text("error share").first.wait_for(timeout=10_000)
                finally:  # what the page showed, found or not
                    SCREENSHOT.parent.mkdir(exist_ok=True)
                    page.screenshot(path=str(SCREENSHOT), full_page=True)
            finally:
                browser.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
