"""The SDK's plain-HTTP path against the kit's server on loopback: what reaches the server
is the call the official SDK would make (path, content type, a signature that verifies)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from eas_core.auth.tokens import HeadAuth, is_authorized_request, verify_head
from eas_core.http.server import Request, Response
from eas_core.sdk.predict import AsyncPredictClient, PredictClient, StringRequest
from tests.unit.test_http_client import Echo

TOKEN = "secret-token"
SERVICE = "svc"


class Checking(Echo):
    """Answers the body when the call is signed with TOKEN for /api/predict/svc, else 401."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        super().__init__()

    async def handle(self, request: Request) -> Response:
        self.seen.append(request)
        signed = verify_head(TOKEN, request.headers, path=f"/api/predict/{SERVICE}")
        if signed is not HeadAuth.SIGNED or not is_authorized_request(
            TOKEN, request.headers, path=f"/api/predict/{SERVICE}", body=request.body
        ):
            return Response(401, b"bad signature")
        return Response(200, request.body)


@pytest.fixture
def server() -> Iterator[Checking]:
    checking = Checking()
    yield checking
    checking.stop()


def test_signed_calls_from_threads_verify_and_reach_the_prefixed_path(server: Checking) -> None:
    client = PredictClient(f"http://127.0.0.1:{server.port}/prefix", SERVICE)
    client.set_token(TOKEN)
    client.set_content_type("application/json")
    client.init()
    try:
        for body in (b"{}", b"", "naïve".encode(), b"x" * 300_000):
            assert client.predict(StringRequest(body)).response_data == body
    finally:
        client.destroy()
    request = server.seen[-1]
    assert request.path == f"/prefix/api/predict/{SERVICE}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert len({r.peer for r in server.seen}) == 1  # one keep-alive connection carried all


def test_the_asyncio_client_signs_the_same_way(server: Checking) -> None:
    async def calls() -> list[bytes]:
        client = AsyncPredictClient(f"127.0.0.1:{server.port}/prefix", SERVICE)
        client.set_token(TOKEN)
        await client.init()
        try:
            requests = [StringRequest(f"call {i}".encode()) for i in range(20)]
            answers = await asyncio.gather(*(client.predict(r) for r in requests))
        finally:
            await client.destroy()
        return [a.response_data for a in answers]

    assert asyncio.run(calls()) == [f"call {i}".encode() for i in range(20)]


def test_a_proxy_the_environment_names_is_left_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    client = PredictClient("http://10.1.2.3:8080", SERVICE)
    assert client._target("http://10.1.2.3:8080").plain
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "")
    client.set_service_name(SERVICE)  # forgets what it knew of its targets
    assert not client._target("http://10.1.2.3:8080").plain
    assert not client._target("https://10.1.2.3:8443").plain
