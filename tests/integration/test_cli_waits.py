"""What `eascmd create` says while it waits and when the service cannot run: progress lines
naming why, one [FAIL] line with the controller's reason, and a non-zero exit — right away,
not at the end of the wait's timeout."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.installation import Installation, python_service

# Far below the wait's own 600 s: a service that cannot run must be reported in seconds.
PROMPTLY = 60


def test_a_create_that_can_never_fit_exits_at_once_naming_the_reason(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    description = workdir / "huge.json"
    description.write_text(json.dumps(python_service(unique_name, metadata={"cpu": 1000})))
    result = installation.eascmd("create", str(description), check=False, timeout=PROMPTLY)
    assert result.returncode == 1, result.stderr
    assert "metadata.cpu: 1000 cores per instance is more than any node" in result.stderr
    assert unique_name not in {s.service_name for s in installation.client.list_services()}


def test_a_create_whose_service_fails_shows_the_reason_and_exits_non_zero(
    installation: Installation, unique_name: str, workdir: Path
) -> None:
    model = workdir / "model.txt"
    model.write_text("fail-initialize")
    description = workdir / "failing.json"
    description.write_text(json.dumps(python_service(unique_name, model_path=str(model))))
    result = installation.eascmd("create", str(description), check=False, timeout=PROMPTLY)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    # While it waits: progress lines with the counts (no "[OK] Waiting").
    waits = [line for line in lines if line.startswith("… ")]
    assert waits and all("[Total: 1, " in line for line in waits), lines
    assert not any(line.startswith("[OK] Waiting") for line in lines), lines
    # Then one failure line with the controller's reason, and nothing claiming success.
    assert lines[-1].startswith(f"[FAIL] service {unique_name!r} failed: "), lines
    assert "this model refuses to load" in lines[-1]
    assert "[OK] Service is running" not in result.stderr
