"""Scale from zero: a call for a service with no ready instance whose route ``wakes`` is held
while the controller starts one, instead of being answered 503 at once.

Bounded both ways: at most ``wake_max_held`` calls wait per service (more get 503 at once) and
none waits longer than ``wake_timeout`` seconds (then 503 with ``Retry-After``). The
controller is asked once per second at most per service, however many calls wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from eas_core.gateway.table import CompiledRoute
from eas_core.http.server import Response, text
from eas_core.spec.paths import INTERNAL_TOKEN_HEADER, WAKE_PATH
from eas_core.spec.status import SERVICE_UNAVAILABLE

log = logging.getLogger(__name__)

ASK_EVERY = 1.0
POLL = 0.05


def unavailable(message: str, retry_after: int) -> Response:
    answer = text(SERVICE_UNAVAILABLE, message)
    answer.headers.append(("retry-after", str(retry_after)))
    return answer


class Waker:
    def __init__(
        self, controllers: list[str], internal_token: str, *, timeout: float, max_held: int
    ) -> None:
        # Every controller of the installation: a standby answers 503, a dead one not at
        # all, and the next one in the list is asked.
        self.controllers = controllers
        self.headers = {INTERNAL_TOKEN_HEADER: internal_token}
        self.timeout = timeout
        self.max_held = max_held
        self.held: dict[str, int] = {}
        self.asked_at: dict[str, float] = {}
        self.http: httpx.AsyncClient | None = None

    async def wait(
        self, name: str, ready: Callable[[], CompiledRoute | None]
    ) -> CompiledRoute | Response:
        """The route to send the held call to once ``ready()`` finds one, or the answer to
        give instead."""
        if self.held.get(name, 0) >= self.max_held:
            return unavailable(
                f"service {name!r} is starting from zero and {self.max_held} calls already "
                "wait for it",
                1,
            )
        self.held[name] = self.held.get(name, 0) + 1
        try:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                target = ready()
                if target is not None:
                    return target
                if time.monotonic() - self.asked_at.get(name, 0.0) >= ASK_EVERY:
                    self.asked_at[name] = time.monotonic()
                    if not await self.ask(name):
                        return unavailable(f"service {name!r} has no ready instance", 1)
                await asyncio.sleep(POLL)
            return unavailable(
                f"service {name!r} had no ready instance within {self.timeout:g} s of "
                "starting from zero",
                5,
            )
        finally:
            self.held[name] -= 1

    async def ask(self, name: str) -> bool:
        """Ask the controller for an instance; False when it says the service does not
        scale from zero (the call should not wait). An unreachable controller is asked
        again while the call waits."""
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=5.0)
        for controller in self.controllers:
            try:
                answer = await self.http.post(
                    f"{controller}{WAKE_PATH}{name}", headers=self.headers
                )
                answer.raise_for_status()
                return bool(answer.json().get("Waking"))
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("cannot ask the controller %s to start %s: %s", controller, name, exc)
        return True

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
