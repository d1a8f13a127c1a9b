"""Every ``examples/<processor>/`` runs as its docstring says: the script makes the model, the
model loads in the processor its ``service.json`` names, and ``request.json`` is answered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from processors import registry
from tests.processors.contract import Case, call, load

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["pmml", "sklearn", "xgboost", "lightgbm", "parameter_server"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_model_is_served_by_the_processor_its_description_names(
    example: str, tmp_path: Path
) -> None:
    folder = REPO / "examples" / example
    description = json.loads((folder / "service.json").read_text())
    assert set(description) == {"name", "processor", "model_path", "metadata"}
    assert registry.refusal(description["processor"]) is None
    subprocess.run(
        [sys.executable, "-m", f"examples.{example}.make_model", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    model = tmp_path / description["model_path"]
    assert model.exists(), sorted(p.name for p in tmp_path.iterdir())
    request = (folder / "request.json").read_bytes()
    processor = load(Case(description["processor"], str(model), request, lambda _: None))
    body, status = call(processor, request)
    assert status == 200, body
    answers = json.loads(body)
    assert isinstance(answers, list) and len(answers) == len(json.loads(request))
