"""What eascmd prints while it waits and when it is done: the four kinds of line (progress,
success, warning, failure) and the wait line built from what the controller says, checked as
rendered text, with colour and without."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from eas_core.cli import output
from eas_core.cli.waiting import wait_line
from eas_core.sdk import Instance, Service

NOW = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)


def service(**changes: Any) -> Service:
    fields: dict[str, Any] = {
        "service_name": "demo",
        "status": "Waiting",
        "region": "local",
        "create_time": NOW,
        "update_time": NOW,
        "total_instance": 2,
        "running_instance": 0,
        "pending_instance": 2,
        "cpu": 1,
        "memory": 256,
        "gpu": 0,
        "resource": "public",
        "weight": 100,
        "latest_version": 1,
        "current_version": 1,
        "message": "Waiting for instances to be ready",
        "intranet_endpoint": "http://127.0.0.1:9000/api/predict/demo",
        "internet_endpoint": "http://127.0.0.1:9000/api/predict/demo",
        "access_token": "t",
        "related_to": None,
        "released": False,
        "retired": False,
        "service_config": {},
    }
    return Service(**{**fields, **changes})


def instance(name: str, version: int, status: str, ready: bool, reason: str = "") -> Instance:
    return Instance(
        instance_name=name,
        node="local",
        ip="127.0.0.1",
        port=9100,
        status=status,
        ready=ready,
        restarts=0,
        start_time=NOW if ready else None,
        version=version,
        reason=reason,
    )


def rendered(kind: str, message: str, *, colour: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=colour, color_system="standard" if colour else None)
    console.print(output.line(kind, message), highlight=False)
    return out.getvalue()


@pytest.mark.parametrize(
    ("kind", "tag", "colour_code"),
    [
        ("progress", "…", "\x1b[2;36m"),
        ("success", "[OK]", "\x1b[32m"),
        ("warning", "[WARN]", "\x1b[33m"),
        ("failure", "[FAIL]", "\x1b[1;31m"),
    ],
)
def test_each_kind_of_line_has_its_tag_and_colour(kind: str, tag: str, colour_code: str) -> None:
    # A message with brackets: rich markup would eat "[demo]" and "[OK]" if it were parsed.
    message = "Service [demo] said [OK] [bold]"
    assert rendered(kind, message, colour=False) == f"{tag} {message}\n"
    coloured = rendered(kind, message, colour=True)
    assert coloured.startswith(colour_code + tag) and coloured.endswith(f" {message}\n")


def test_a_wait_shows_why_an_instance_is_not_running() -> None:
    info = service(message="not enough free resources on the node (waiting for room)")
    pending = [instance("demo-a", 1, "Pending", False, info.message)] * 2
    assert wait_line(info, pending) == (
        "Waiting [Total: 2, Pending: 2, Running: 0]: "
        "not enough free resources on the node (waiting for room)"
    )


def test_instance_reasons_the_message_does_not_say_are_added_once() -> None:
    info = service(running_instance=1, pending_instance=1)
    instances = [
        instance("demo-a", 1, "Running", True),
        instance("demo-b", 1, "Pending", False, "model download: 40%"),
        instance("demo-c", 1, "Pending", False, "model download: 40%"),
    ]
    assert wait_line(info, instances) == (
        "Waiting [Total: 2, Pending: 1, Running: 1]: Waiting for instances to be ready; "
        "demo-b: model download: 40%"
    )


def test_a_roll_counts_the_new_and_the_old_version_apart() -> None:
    info = service(
        status="Updating",
        latest_version=2,
        current_version=2,
        running_instance=1,
        pending_instance=1,
        message="Rolling to version 2",
    )
    instances = [
        instance("demo-1a", 1, "Running", True),
        instance("demo-1b", 1, "Running", True),
        instance("demo-1c", 1, "Terminating", False),
        instance("demo-2a", 2, "Running", True),
        instance("demo-2b", 2, "Pending", False),
    ]
    assert wait_line(info, instances) == (
        "Updating [version 1 → 2: new 1/2 running, old 2 serving]: Rolling to version 2"
    )


def test_a_failed_command_shows_one_red_fail_line(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(output, "stderr", Console(file=out, color_system=None))
    failed = output.Failed("service 'demo' failed: this model refuses to load")
    failed.show()
    assert out.getvalue() == "[FAIL] service 'demo' failed: this model refuses to load\n"
    assert failed.exit_code == 1
