"""Training callables and model files for the flaky test processor (processors/flaky)."""

from __future__ import annotations

import json
from pathlib import Path


def flaky_model(directory: Path, label: str, fail_after: int = -1) -> Path:
    """A model for processors/flaky: answers "pong" to ``fail_after`` pings (-1: forever)."""
    path = directory / f"flaky-{label}.json"
    path.write_text(json.dumps({"answer": "pong", "label": label, "fail_after": fail_after}))
    return path


def train_flaky(output_dir: Path) -> tuple[Path, dict[str, float]]:
    return flaky_model(output_dir, "trained"), {"accuracy": 1.0}
