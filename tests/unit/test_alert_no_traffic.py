"""A share alert over a window without traffic resolves; a stalled collection changes
nothing. Real SQLite stores, a real loopback callback receiving the POSTs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from eas_core.config import ControllerSettings
from eas_core.controller.metrics.alerting import FIRING, RESOLVED, Alerting
from eas_core.controller.store import FINE, AlertStore, Point, Repository, ScalingStore, SeriesStore
from eas_core.spec.alerts import AlertRule
from tests.support.installation import wait_for


class Callback:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def callback() -> Iterator[Callback]:
    hook = Callback()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture
def alerting(tmp_path: Path) -> Iterator[tuple[Alerting, SeriesStore, AlertStore]]:
    repo = Repository(f"sqlite:///{tmp_path / 'eas.db'}")
    series, alerts = SeriesStore(repo.engine), AlertStore(repo.engine)
    settings = ControllerSettings(data_dir=tmp_path, alert_tries=1)
    running = Alerting(settings, repo, alerts, series, ScalingStore(repo.engine))
    yield running, series, alerts
    running.stop()


def rule(alerts: AlertStore, url: str) -> AlertRule:
    document = {"Name": "errors", "Metric": "share_5xx", "Condition": ">", "Threshold": 10,
                "Window": 60, "CallbackUrl": url}  # fmt: skip
    alerts.add_rule("errors", document)
    return AlertRule.model_validate(document)


def status(alerts: AlertStore) -> str:
    [state] = alerts.states("errors")
    return state.status


def test_a_firing_share_alert_resolves_when_the_window_has_no_traffic(
    alerting: tuple[Alerting, SeriesStore, AlertStore], callback: Callback
) -> None:
    running, series, alerts = alerting
    errors = rule(alerts, callback.url)
    series.write(FINE, [Point("svc", "", "share_5xx", 1000, 50), Point("svc", "", "rps", 1000, 4)])
    running.check(errors, ["svc"], 1010)
    assert status(alerts) == FIRING

    # The callers went away: the collector keeps writing rps 0, and no share at all.
    series.write(FINE, [Point("svc", "", "rps", t, 0) for t in (1070, 1075, 1080)])
    running.check(errors, ["svc"], 1081)

    assert status(alerts) == RESOLVED
    wait_for(lambda: len(callback.bodies) == 2, timeout=10, what="two alert POSTs")
    # Each POST goes on its own thread: they may arrive in either order.
    by_status = {body["Status"]: body for body in callback.bodies}
    resolved = by_status["resolved"]
    assert (resolved["NoData"], resolved["Value"]) == (True, 0)
    assert resolved["Reason"] == "no traffic in the window"
    assert by_status["firing"]["NoData"] is False


def test_a_stalled_collection_leaves_a_firing_alert_firing(
    alerting: tuple[Alerting, SeriesStore, AlertStore], callback: Callback
) -> None:
    running, series, alerts = alerting
    errors = rule(alerts, callback.url)
    series.write(FINE, [Point("svc", "", "share_5xx", 1000, 50), Point("svc", "", "rps", 1000, 4)])
    running.check(errors, ["svc"], 1010)

    running.check(errors, ["svc"], 1081)  # no points of any kind in the window

    assert status(alerts) == FIRING


def test_an_idle_service_never_fires_a_share_alert_and_is_recorded_resolved(
    alerting: tuple[Alerting, SeriesStore, AlertStore], callback: Callback
) -> None:
    running, series, alerts = alerting
    series.write(FINE, [Point("svc", "", "rps", 1000, 0)])
    running.check(rule(alerts, callback.url), ["svc"], 1010)
    assert status(alerts) == RESOLVED
    assert callback.bodies == []
