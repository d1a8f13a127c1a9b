"""The official ``eas-prediction`` SDK calls a PMML service as a PAI-EAS user would: a
``StringRequest`` holding JSON records, through the gateway, with the service's token; the
answer is the records' output fields, as scikit-learn computes them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.processors.tabular_models import close, heart_pmml, probabilities, records
from tests.support.installation import REPO, Installation
from tests.support.official_sdk import SDKInstallError, ensure_sdk_venv

pytestmark = [pytest.mark.sdk, pytest.mark.timeout(900)]
pytest.importorskip("jpmml_evaluator", reason="the pmml extra is not installed")

SCRIPT = """
import json, sys
from eas_prediction import PredictClient, StringRequest

endpoint, service, token, body = sys.argv[1:5]
client = PredictClient(endpoint, service)
client.set_token(token)
client.init()
response = client.predict(StringRequest(body))
print("RESULT " + response.response_data.decode("utf-8"))
"""


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    try:
        return ensure_sdk_venv()
    except SDKInstallError as exc:
        pytest.fail(f"could not install the official SDK:\n{exc}", pytrace=False)


def test_string_request_gets_the_pmml_answer_through_the_gateway(
    installation: Installation, sdk_python: Path, unique_name: str, tmp_path: Path
) -> None:
    path, model, frame = heart_pmml(tmp_path)
    body = json.dumps(records(frame))
    expected: Any = probabilities(model.predict_proba(frame), [0, 1])
    client = installation.client
    client.create_service(
        {
            "name": unique_name,
            "processor": "pmml",
            "model_path": str(path),
            "metadata": {"instance": 1, "cpu": 0.1, "memory": 512},
        }
    )
    client.wait_until_running(unique_name, timeout=120)
    token = client.describe_service(unique_name).access_token
    done = subprocess.run(
        [str(sdk_python), "-c", SCRIPT, f"127.0.0.1:{installation.gateway_port}",
         unique_name, token, body],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and len(lines) == 1, (done.stdout, done.stderr)
    close(json.loads(lines[0].removeprefix("RESULT ")), expected)
