"""The official PAI-EAS Python SDK (`eas-prediction` from PyPI) works unchanged against us.

It signs every request (`Authorization: EAS ...` with its local time labelled GMT), and in
direct mode reads /api/v1/servicediscovery/upstreams/<service> from the gateway and calls
the instances itself — both paths are exercised here exactly as a PAI-EAS user would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.installation import Installation, python_service
from tests.support.official_sdk import SDKInstallError, ensure_sdk_venv, run_sdk_script

# Building the venv on a fresh machine downloads numpy and protobuf: allow for it.
pytestmark = [pytest.mark.sdk, pytest.mark.timeout(900)]

SERVICE = "official_sdk_probe"


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The SDK venv's python; a failed pip install fails the tests (never skips them)."""
    try:
        return ensure_sdk_venv()
    except SDKInstallError as exc:
        pytest.fail(f"could not install the official SDK:\n{exc}", pytrace=False)


@pytest.fixture(scope="module")
def sdk_results(installation: Installation, sdk_python: Path) -> Iterator[dict[str, Any]]:
    """Deploy a two-instance probe, run the SDK script once against it, share its results."""
    client = installation.client
    client.create_service(python_service(SERVICE, instances=2))
    try:
        client.wait_until_running(SERVICE, timeout=60)
        token = client.describe_service(SERVICE).access_token
        instances = sorted(f"{w.ip}:{w.port}" for w in client.list_instances(SERVICE))
        results = run_sdk_script(sdk_python, installation.gateway_port, SERVICE, token)
        results["expected_instances"] = instances
        yield results
    finally:
        client.delete_service(SERVICE)
        client.wait_until_deleted(SERVICE, timeout=60)


def expect_echo(answers: list[dict[str, Any]]) -> None:
    assert answers == [
        {"type": "StringResponse", "data_type": "bytes", "data": "hello"},
        {"type": "StringResponse", "data_type": "bytes", "data": "hello again"},
    ]


def test_string_request_through_the_gateway(sdk_results: dict[str, Any]) -> None:
    expect_echo(sdk_results["gateway"])


def test_string_request_direct_to_instances(sdk_results: dict[str, Any]) -> None:
    expect_echo(sdk_results["direct"])
    # The SDK learnt every ready instance from service discovery ...
    assert sdk_results["direct_instances"] == sdk_results["expected_instances"]
    # ... and its weighted round robin spread the calls over both of them.
    whoami = sdk_results["direct_whoami"]
    assert all(w.get("type") == "StringResponse" for w in whoami), whoami
    assert len({w["data"] for w in whoami}) == 2, whoami


@pytest.mark.parametrize("mode", ["gateway", "direct"])
def test_wrong_token_raises_predict_exception_401(sdk_results: dict[str, Any], mode: str) -> None:
    answer = sdk_results[f"{mode}_wrong_token"]
    assert answer.get("error") == 401, answer
