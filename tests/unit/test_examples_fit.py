"""Every example deploys on the 2-core machine the README targets, beside the demo, with room
for the one extra instance a rolling update starts before it stops an old one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eas_core.cli.server import DEMO_METADATA
from eas_core.spec.service import parse_description

REPO = Path(__file__).resolve().parents[2]
CORES = 2.0
DEMO_CPU = float(DEMO_METADATA["cpu"])


def examples() -> list[Path]:
    # examples/cpp and examples/java hold one directory per example.
    return (
        sorted(REPO.glob("examples/*/service.json"))
        + sorted(REPO.glob("examples/*/*/service.json"))
        + sorted(REPO.glob("examples/*/pipeline.yaml"))
    )


@pytest.mark.parametrize("path", examples(), ids=lambda p: str(p.relative_to(REPO)))
def test_an_example_and_its_rolling_update_fit_two_cores_beside_the_demo(path: Path) -> None:
    if path.suffix == ".json":
        document = json.loads(path.read_text())
    else:
        document = yaml.safe_load(path.read_text())["service"]
    meta = parse_description({"model_path": "/m", **document}).metadata
    needed = DEMO_CPU + (meta.instance + 1) * meta.cpu
    assert needed <= CORES, f"{path}: {meta.instance} × {meta.cpu} cpu + a surge + the demo"
