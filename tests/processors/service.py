"""Deploy a built-in processor through the real installation and call it both ways.

The description names only ``processor`` and ``model_path`` (and ``model_config`` where the
processor reads one), as a PAI-EAS user writes it; no user code is involved.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.installation import Installation


@dataclass
class Deployed:
    name: str
    token: str
    gateway: str  # base URL of the gateway
    direct: str  # base URL of the service's instance (what direct callers use)

    def url(self, direct: bool) -> str:
        return f"{self.direct if direct else self.gateway}/api/predict/{self.name}"

    def post(self, body: bytes, *, direct: bool = False, **headers: str) -> httpx.Response:
        headers = {"Authorization": self.token, **headers}
        return httpx.post(self.url(direct), content=body, headers=headers, timeout=60)

    def together(self, bodies: list[bytes], *, direct: bool = False) -> list[httpx.Response]:
        """Send every body at once (one thread each, released by a barrier); the answers in
        the bodies' order."""
        barrier = threading.Barrier(len(bodies))

        def one(body: bytes) -> httpx.Response:
            barrier.wait(timeout=30)
            return self.post(body, direct=direct)

        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(one, bodies))

    def get(self, *, direct: bool = False, query: str = "") -> httpx.Response:
        url = self.url(direct) + (f"?{query}" if query else "")
        return httpx.get(url, headers={"Authorization": self.token}, timeout=60)


# A service that gathers requests into batches of up to 8, each waiting up to half a second:
# concurrent callers released together land in shared batches however the machine is loaded.
BATCHED = {"instance": 1, "cpu": 1, "memory": 2000, "rpc.batching": True}
BATCHED |= {"rpc.max_batch_size": 8, "rpc.max_batch_timeout": 500}


def description(name: str, processor: str, model_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "processor": processor,
        "model_path": str(model_path),
        "metadata": {"instance": 1, "cpu": 1, "memory": 2000},
        **extra,
    }


@contextmanager
def deployed(
    installation: Installation, name: str, processor: str, model_path: Path, **extra: Any
) -> Iterator[Deployed]:
    client = installation.client
    client.create_service(description(name, processor, model_path, **extra))
    try:
        # A framework's first import on a busy 2-core machine takes a while.
        client.wait_until_running(name, timeout=300)
        token = client.describe_service(name).access_token
        instance = client.list_instances(name)[0]
        yield Deployed(
            name,
            token,
            installation.gateway_url,
            f"http://{instance.ip}:{instance.port}",
        )
    finally:
        client.delete_service(name)
        client.wait_until_deleted(name, timeout=120)
