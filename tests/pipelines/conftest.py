"""Fixtures for the pipeline tests: the connection resource, a Dagster instance, trained
heart-disease models and declarations with unique service names.

Every service a test deploys is deleted when the test ends (``cleanup``, tests/conftest.py):
the installation is shared by the whole session and a 2-core machine has no room for idle
instances.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
import yaml

from eas_pipelines.declaration import PipelineDeclaration, parse_declaration
from eas_pipelines.resources import EASResource
from tests.support.installation import Installation

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "heart_disease"
FLAKY = Path(__file__).resolve().parent / "processors" / "flaky"


@pytest.fixture
def eas(installation: Installation) -> EASResource:
    return EASResource(
        endpoint=installation.controller_url,
        access_key_id=installation.client.key.id,
        access_key_secret=installation.client.key.secret,
        gateway=installation.gateway_url,
        timeout=60,
    )


@pytest.fixture
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real PMML models exported from scikit-learn, trained once: ``good`` (the example's
    training), ``inverted`` (trained on flipped labels: it answers, confidently wrong) and
    ``garbage`` (bytes the pmml processor refuses to load)."""
    from examples.heart_disease.data import generate
    from examples.heart_disease.train import fit, save, train

    out = tmp_path_factory.mktemp("models")
    good, _ = train(out)
    matrix, labels = generate(n=1500)
    inverted = save(fit(matrix, 1 - labels), out / "inverted.pmml")
    garbage = out / "garbage.pmml"
    garbage.write_bytes(np.arange(16, dtype=np.uint8).tobytes())
    return {"good": good, "inverted": inverted, "garbage": garbage}


def heart_document(name: str, store: Path, **changes: Any) -> dict[str, Any]:
    """The example's declaration, for service ``name``, with fast settings for tests."""
    document: dict[str, Any] = yaml.safe_load((EXAMPLE / "pipeline.yaml").read_text())
    document["service"]["name"] = name
    document["service"]["metadata"].update({"cpu": 0.1, "memory": 256})
    document["store"] = {"kind": "local", "path": str(store), "prefix": "trained"}
    document["smoke_tests"]["repeat"] = 2
    document["rollout"]["ready_timeout_seconds"] = 90
    document["sensors"]["health"]["interval_seconds"] = 1
    for key, value in changes.items():
        document[key] = value
    return document


def flaky_document(name: str, store: Path, **changes: Any) -> dict[str, Any]:
    """A pipeline over the flaky test processor: smoke = one ping answered "pong"."""
    document: dict[str, Any] = {
        "service": {
            "name": name,
            "processor_type": "python",
            "processor_path": str(FLAKY),
            "processor_entry": "app.py",
            "metadata": {"instance": 1, "cpu": 0.1, "memory": 128},
        },
        "train": "tests.pipelines.training:train_flaky",
        "store": {"kind": "local", "path": str(store)},
        "smoke_tests": {
            "requests": [{"name": "ping", "body": "ping", "expect": {"body": "pong"}}],
        },
        "rollout": {"strategy": "all_at_once", "ready_timeout_seconds": 60},
    }
    document.update(changes)
    return document


@pytest.fixture
def declare(tmp_path: Path) -> Callable[[dict[str, Any]], PipelineDeclaration]:
    def make(document: dict[str, Any]) -> PipelineDeclaration:
        return parse_declaration(document, base_dir=tmp_path)

    return make


def dagster_environment(
    home: Path, declarations: Path, installation: Installation
) -> dict[str, str]:
    """The environment of a Dagster process (webserver, daemon) serving this project's
    pipelines against ``installation``: none of this process's EAS_/DAGSTER_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EAS_", "DAGSTER_"))}
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "EAS_PIPELINES_DIR": str(declarations),
            "EAS_PIPELINES_ENDPOINT": installation.controller_url,
            "EAS_PIPELINES_ACCESS_KEY_ID": installation.client.key.id,
            "EAS_PIPELINES_ACCESS_KEY_SECRET": installation.client.key.secret,
            "EAS_PIPELINES_GATEWAY": installation.gateway_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
    )
    return env
