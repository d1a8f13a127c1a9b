"""A steady, bounded load on one endpoint, recording every answer (for zero-failure tests).

Each answer is kept with the time its call was answered (``answers``) and the time it was
sent (``sent``): "the calls sent after the switch" is what a rollout test asserts on, and a
call sent just before it may still be answered just after.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.support.installation import wait_for


@dataclass
class LoadResult:
    answers: list[tuple[float, int, bytes]] = field(default_factory=list)  # (time, status, body)
    sent: list[float] = field(default_factory=list)  # when each answer's call was sent

    @property
    def failures(self) -> list[tuple[float, int, bytes]]:
        return [a for a in self.answers if a[1] != 200]

    def bodies_since(self, start: float) -> Counter[bytes]:
        return Counter(body for t, status, body in self.answers if t >= start and status == 200)

    def sent_since(self, start: float) -> list[tuple[int, bytes]]:
        """(status, body) of the answered calls sent at or after ``start``, in sending order."""
        calls = sorted(
            (sent, status, body)
            for sent, (_, status, body) in zip(self.sent, self.answers, strict=True)
            if sent >= start
        )
        return [(status, body) for _, status, body in calls]


class SteadyLoad:
    """``threads`` callers, each sending ``body`` in a loop until stopped, at most
    ``max_seconds`` and ``max_requests`` in all."""

    def __init__(
        self,
        url: str,
        token: str,
        body: bytes,
        *,
        threads: int = 4,
        max_seconds: float = 180.0,
        max_requests: int = 200_000,
    ) -> None:
        self.url = url
        self.token = token
        self.body = body
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.stopping = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.max_requests = max_requests
        self.result = LoadResult()
        self.lock = threading.Lock()

    def __enter__(self) -> SteadyLoad:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def calls_since(self, start: float) -> list[tuple[int, bytes]]:
        """(status, body) of the answered calls sent at or after ``start``, in sending order."""
        with self.lock:
            return self.result.sent_since(start)

    def next_calls(self, count: int, *, timeout: float = 60.0) -> list[tuple[int, bytes]]:
        """(status, body) of the next ``count`` calls sent from now on, once answered."""
        start = time.monotonic()

        def answered() -> list[tuple[int, bytes]] | None:
            calls = self.calls_since(start)
            return calls[:count] if len(calls) >= count else None

        found: list[tuple[int, bytes]] = wait_for(
            answered, timeout=timeout, interval=0.05, what=f"{count} more calls to be answered"
        )
        return found

    def settle(
        self, is_expected: Callable[[bytes], bool], *, count: int = 20, timeout: float = 30.0
    ) -> None:
        """Wait until ``count`` calls in a row, all sent after this was called, answer 200
        with a body ``is_expected`` accepts (a switch of versions or weights has reached
        the gateway); fail if that does not happen within ``timeout``."""
        start = time.monotonic()

        def settled() -> bool:
            latest = self.calls_since(start)[-count:]
            return len(latest) == count and all(
                status == 200 and is_expected(body) for status, body in latest
            )

        wait_for(settled, timeout=timeout, interval=0.05, what=f"{count} expected answers in a row")

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stopping.is_set() and time.monotonic() < self.deadline:
                sent = time.monotonic()
                try:
                    answer = client.post(
                        self.url, content=self.body, headers={"Authorization": self.token}
                    )
                    record = (time.monotonic(), answer.status_code, answer.content)
                except httpx.HTTPError as exc:
                    record = (time.monotonic(), 0, repr(exc).encode())
                with self.lock:
                    self.result.answers.append(record)
                    self.result.sent.append(sent)
                    if len(self.result.answers) >= self.max_requests:
                        self.stopping.set()
