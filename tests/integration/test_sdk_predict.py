"""Our own prediction client (eas_core.sdk): the eas_prediction API, sync and asyncio,
through the gateway and direct, signed with the token."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator

import pytest

from eas_core.sdk import (
    ENDPOINT_TYPE_DIRECT,
    AsyncPredictClient,
    PredictClient,
    PredictException,
    StringRequest,
)
from tests.support.installation import Installation, python_service


@pytest.fixture(scope="module")
def service(installation: Installation) -> Iterator[tuple[str, str]]:
    name = "sdk_predict_probe"
    installation.client.create_service(python_service(name, instances=2))
    installation.client.wait_until_running(name, timeout=60)
    yield name, installation.client.describe_service(name).access_token
    installation.client.delete_service(name)


def client(
    installation: Installation, name: str, token: str, direct: bool = False
) -> PredictClient:
    predict = PredictClient(installation.gateway_url, name)
    predict.set_token(token)
    if direct:
        predict.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    predict.init()
    return predict


def test_gateway_and_direct(installation: Installation, service: tuple[str, str]) -> None:
    name, token = service
    for direct in (False, True):
        predict = client(installation, name, token, direct)
        try:
            assert predict.predict(StringRequest("echo:hi")).response_data == b"hi"
            seen = {
                json.loads(predict.predict(StringRequest("whoami")).response_data)["instance"]
                for _ in range(6)
            }
            assert len(seen) == 2  # both instances answer, through the gateway or directly
        finally:
            predict.destroy()


def test_errors_carry_the_status(installation: Installation, service: tuple[str, str]) -> None:
    name, _ = service
    for direct in (False, True):
        predict = client(installation, name, "wrong-token", direct)
        try:
            with pytest.raises(PredictException) as err:
                predict.predict(StringRequest("echo:x"))
            assert err.value.code == 401
        finally:
            predict.destroy()
    predict = client(installation, name, service[1])
    try:
        with pytest.raises(PredictException) as err:
            predict.predict(StringRequest("status:418"))
        assert err.value.code == 418
    finally:
        predict.destroy()


def test_direct_client_tries_another_instance(
    installation: Installation, service: tuple[str, str]
) -> None:
    name, token = service
    predict = client(installation, name, token, direct=True)
    try:
        victim = installation.client.list_instances(name)[0].instance_name
        record = json.loads(
            (installation.data_dir / "instances" / victim / "record.json").read_text()
        )
        os.kill(record["pid"], signal.SIGKILL)
        # The client's list still names the dead instance; every call still succeeds.
        for _ in range(6):
            assert predict.predict(StringRequest("echo:alive")).response_data == b"alive"
    finally:
        predict.destroy()
    installation.client.wait_until_running(name, timeout=60)


def test_asyncio_client(installation: Installation, service: tuple[str, str]) -> None:
    name, token = service

    async def run() -> list[bytes]:
        predict = AsyncPredictClient(installation.gateway_url, name)
        predict.set_token(token)
        predict.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
        await predict.init()
        try:
            answers = await asyncio.gather(
                *(predict.predict(StringRequest(f"echo:{i}")) for i in range(10))
            )
            return [a.response_data for a in answers]
        finally:
            await predict.destroy()

    assert asyncio.run(run()) == [str(i).encode() for i in range(10)]
