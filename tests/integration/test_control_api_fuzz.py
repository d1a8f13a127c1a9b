"""The control API fuzzed from its own OpenAPI document (schemathesis), every request signed
with the access key, against a real controller: no answer may be a server error, and
answers must match the status codes, content types and schemas the document declares.

The installation is sized so nothing the fuzzer creates can take the machine: one node of
1 MB memory (at most one instance runs at a time), no local directory and no URL host that
a deployment may read from.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import one_of
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from eas_core.auth.keys import AccessKey, sign_request
from tests.support.installation import Installation, start_installation

EXAMPLES_PER_OPERATION = 40
TARGET = "fuzz_target"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class SignedAuth(requests.auth.AuthBase):
    """Signs each request as it is sent, over the exact bytes of its body."""

    def __init__(self, key: AccessKey) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        assert isinstance(body, bytes), "the fuzzer sends whole bodies"
        headers = sign_request(
            self.key, request.method or "GET", unquote(parts.path), parts.query, body
        )
        request.headers.update(headers)
        return request


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    root = tmp_path_factory.mktemp("fuzz")
    data_dir = root / "data"
    data_dir.mkdir()
    (root / "nothing").mkdir()
    running = start_installation(
        data_dir,
        extra_env={
            "EAS_NODE_CPU": "1",
            "EAS_NODE_MEMORY_MB": "1",
            "EAS_ARTEFACT_LOCAL_ROOTS": json.dumps([str(root / "nothing")]),
            "EAS_ARTEFACT_URL_HOSTS": "[]",
        },
    )
    yield running
    running.stop()


def test_control_api_answers_fuzzed_requests_without_server_errors(
    fuzzed: Installation, tmp_path: Path
) -> None:
    # One test over every operation of the document (the schema is read from the running
    # controller, so the operations are only known once it runs).
    schema = schemathesis.openapi.from_url(f"{fuzzed.controller_url}/openapi.json")
    key = fuzzed.client.key
    auth = SignedAuth(AccessKey(key.id, key.secret))
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    package = tmp_path / "app.py"
    package.write_text("print('fuzz target')\n")
    fuzzed.client.create_service(
        {
            "name": TARGET,
            "processor_type": "python",
            "processor_path": fuzzed.client.upload(package).uri,
            "processor_entry": "app.py",
            "metadata": {"instance": 0, "cpu": 0.1, "memory": 1},
        }
    )
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"an operation of the document cannot be fuzzed: {result.err()}")
            continue
        operation = result.ok()
        operations += 1
        # Valid and invalid requests, and valid ones aimed at a service that exists (random
        # names mostly answer 404 before reaching anything deeper).
        strategies = [
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]
        if "{name}" in operation.path:
            strategies.append(
                operation.as_strategy(GenerationMode.POSITIVE, path_parameters={"name": TARGET})
            )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=one_of(strategies))
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=CHECKS, auth=auth)
            statuses[response.status_code] += 1

        try:
            fuzz()
        except Exception as exc:  # gather every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    print(f"\n{operations} operations, answers by status: {dict(sorted(statuses.items()))}")
    assert operations >= 14
    assert not failures, "\n\n".join(failures)
    # The signing works: the fuzzer reached the routes, not just the authentication.
    assert statuses[200] + statuses[201] > 0 and statuses[401] < sum(statuses.values()) / 2


def test_fuzzed_installation_still_lists_everything(fuzzed: Installation, tmp_path: Path) -> None:
    """Whatever the fuzzer stored, a listing still answers."""
    assert fuzzed.eascmd("ls").returncode == 0
