"""Admission control: a bounded number of requests in an instance at once (SPEC §8).

``capacity`` = worker threads + ``rpc.max_queue_size``. A request past it is answered 450 at
once and its connection closed, so the caller can retry on another instance. A slot is freed
only when the processor call really ends, even after its caller was answered 408: a stuck
processor keeps counting against the queue, which is what a caller needs to know.
"""

from __future__ import annotations


class Admission:
    __slots__ = ("capacity", "in_flight")

    def __init__(self, worker_threads: int, max_queue_size: int) -> None:
        self.capacity = worker_threads + max_queue_size
        self.in_flight = 0

    def try_enter(self) -> bool:
        if self.in_flight >= self.capacity:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1
