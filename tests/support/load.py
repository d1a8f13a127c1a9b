"""A steady, bounded load on one endpoint, recording every answer (for zero-failure tests)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    answers: list[tuple[float, int, bytes]] = field(default_factory=list)  # (time, status, body)

    @property
    def failures(self) -> list[tuple[float, int, bytes]]:
        return [a for a in self.answers if a[1] != 200]

    def bodies_since(self, start: float) -> Counter[bytes]:
        return Counter(body for t, status, body in self.answers if t >= start and status == 200)


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

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stopping.is_set() and time.monotonic() < self.deadline:
                try:
                    answer = client.post(
                        self.url, content=self.body, headers={"Authorization": self.token}
                    )
                    record = (time.monotonic(), answer.status_code, answer.content)
                except httpx.HTTPError as exc:
                    record = (time.monotonic(), 0, repr(exc).encode())
                with self.lock:
                    self.result.answers.append(record)
                    if len(self.result.answers) >= self.max_requests:
                        self.stopping.set()
