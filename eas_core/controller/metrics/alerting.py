"""Alerts (SPEC §11): an after-tick hook that checks every rule against the collected series
once per collection, and POSTs firing and resolved alerts to the rule's callback URL.

A rule fires for a service when the mean of the service's ``Metric`` over the last ``Window``
seconds meets its condition, and resolves when it no longer does. While it keeps firing, it
is POSTed again once ``Silence`` seconds have passed since the last POST.

A window without points of the rule's metric is one of two things:

- no traffic, for a share (``share_4xx``, ``share_5xx``: a share of nothing has no point) —
  the service's ``rps`` points are there and all 0. Nothing answered, so nothing answered
  badly: a firing alert RESOLVES (``Value`` 0, ``NoData`` true, ``Reason`` "no traffic"), and
  one that never fired is recorded resolved. Otherwise a 5xx alert on a service whose
  callers went away would fire forever.
- collection stalled (no ``rps`` points either, or another metric): the state stays as it
  was — silence that says nothing about the service is not recovery.

Deliveries run on their own threads, each tried up to ``alert_tries`` times with the
installation's back-off between tries, and each is recorded with its outcome; the service
gets an event for each firing and resolving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from eas_core.backoff import Backoff
from eas_core.config import ControllerSettings
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import FINE, AlertStore, Repository, ScalingStore, SeriesStore
from eas_core.spec.alerts import AlertRule

log = logging.getLogger(__name__)

FIRING, RESOLVED = "firing", "resolved"
EVENT_KIND = "Alert"


def evaluate(rule: AlertRule, values: Sequence[float]) -> tuple[bool, float] | None:
    """Whether the rule holds over ``values`` (the window's points), and their mean; None
    without points."""
    if not values:
        return None
    mean = sum(values) / len(values)
    holds = mean > rule.threshold if rule.condition == ">" else mean < rule.threshold
    return holds, mean


SHARES = ("share_4xx", "share_5xx")
NO_TRAFFIC = "no traffic in the window"


def payload(
    rule: AlertRule, service: str, status: str, value: float, reason: str | None = None
) -> dict[str, Any]:
    body = {
        "Alert": rule.name,
        "Status": status,
        "Level": rule.level,
        "ServiceName": service,
        "Metric": rule.metric,
        "Condition": rule.condition,
        "Threshold": rule.threshold,
        "Window": rule.window,
        "Value": value,
        "Time": datetime.now(UTC).isoformat(timespec="seconds"),
        "NoData": reason is not None,
    }
    if reason is not None:
        body["Reason"] = reason
    return body


class Alerting:
    def __init__(
        self,
        settings: ControllerSettings,
        repo: Repository,
        alerts: AlertStore,
        series: SeriesStore,
        events: ScalingStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.alerts = alerts
        self.series = series
        self.events = events
        self.clock = clock
        self.backoff = Backoff(settings.alert_backoff_initial, 30.0)
        self.senders = ThreadPoolExecutor(4, thread_name_prefix="eas-alert")
        self.last_run = 0.0

    def stop(self) -> None:
        self.senders.shutdown(wait=False, cancel_futures=True)

    def __call__(self, snapshot: Snapshot) -> None:
        now = self.clock()
        if now - self.last_run < self.settings.metrics_interval:
            return
        self.last_run = now
        services = [s.name for s in self.repo.list_services() if s.is_running]
        for document in self.alerts.rules():
            try:
                rule = AlertRule.model_validate(document)
            except ValidationError:  # stored by an older release with other rules
                log.exception("alert %s cannot be read", document.get("Name"))
                continue
            if not rule.is_active(datetime.fromtimestamp(now)):
                continue
            try:
                self.check(rule, [s for s in services if rule.covers(s)], now)
            except Exception:  # one rule's trouble must not stop the others
                log.exception("alert %s could not be checked", rule.name)

    def check(self, rule: AlertRule, services: list[str], now: float) -> None:
        states = {s.service: s for s in self.alerts.states(rule.name)}
        for service in services:
            values = [
                p.value
                for p in self.series.read(
                    service, FINE, now - rule.window, metrics=[rule.metric], instance=""
                )
            ]
            verdict = evaluate(rule, values)
            reason = None
            if verdict is None:
                if not self.idle(rule, service, now):
                    continue  # collection stalled: nothing is known
                verdict, reason = (False, 0.0), NO_TRAFFIC
            holds, value = verdict
            state = states.get(service)
            was_firing = state is not None and state.status == FIRING
            if holds and not was_firing:
                self.notify(rule, service, FIRING, value, now, changed=True)
            elif holds and state is not None:
                due = state.notified_at is None or now - state.notified_at >= rule.silence
                if due:
                    self.notify(rule, service, FIRING, value, now, changed=False)
            elif was_firing:
                self.notify(rule, service, RESOLVED, value, now, changed=True, reason=reason)
            elif state is None:
                self.alerts.set_state(
                    rule.name, service, status=RESOLVED, value=value, notified_at=None, changed=True
                )

    def idle(self, rule: AlertRule, service: str, now: float) -> bool:
        """Whether a share rule's empty window means the service answered nothing in it."""
        if rule.metric not in SHARES:
            return False
        rates = self.series.read(service, FINE, now - rule.window, metrics=["rps"], instance="")
        return bool(rates) and all(p.value == 0 for p in rates)

    def notify(
        self,
        rule: AlertRule,
        service: str,
        status: str,
        value: float,
        now: float,
        *,
        changed: bool,
        reason: str | None = None,
    ) -> None:
        self.alerts.set_state(
            rule.name, service, status=status, value=value, notified_at=now, changed=changed
        )
        if changed:
            self.events.add_event(
                service,
                EVENT_KIND,
                f"alert {rule.name} ({rule.level}) {status}: {rule.metric} {value:.2f} "
                f"{rule.condition} {rule.threshold:g} over {rule.window:g} s"
                + (f" ({reason})" if reason else ""),
            )
        body = payload(rule, service, status, value, reason)
        self.senders.submit(self.deliver, rule, service, body)

    def deliver(self, rule: AlertRule, service: str, body: dict[str, Any]) -> None:
        outcome = ""
        attempts = 0
        delivered = False
        with httpx.Client(timeout=self.settings.alert_timeout) as client:
            for attempts in range(1, self.settings.alert_tries + 1):
                try:
                    answer = client.post(str(rule.callback_url), json=body)
                    outcome = f"HTTP {answer.status_code}"
                    delivered = answer.is_success
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                if delivered:
                    break
                if attempts < self.settings.alert_tries:
                    time.sleep(self.backoff.delay(attempts))
        if not delivered:
            log.warning("alert %s for %s not delivered: %s", rule.name, service, outcome)
        self.alerts.add_delivery(
            rule.name,
            service,
            status=body["Status"],
            attempts=attempts,
            delivered=delivered,
            outcome=outcome,
        )
