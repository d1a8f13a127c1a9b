"""Smooth weighted round robin (nginx's): even spreading, deterministic, O(n) per pick.

Used by the gateway (over a service's instances, and over the sides of a blue-green split)
and by the SDK's direct connection (over the instances it discovered).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class WeightedRoundRobin(Generic[T]):
    __slots__ = ("current", "items", "total", "weights")

    def __init__(self, items: Sequence[tuple[T, int]]) -> None:
        kept = [(item, weight) for item, weight in items if weight > 0]
        self.items = [item for item, _ in kept]
        self.weights = [weight for _, weight in kept]
        self.current = [0] * len(kept)
        self.total = sum(self.weights)

    def __len__(self) -> int:
        return len(self.items)

    def pick(self, exclude: set[int] | None = None) -> tuple[int, T] | None:
        """The next item (and its index), skipping indexes in ``exclude``."""
        best = -1
        total = 0
        current = self.current
        for i, weight in enumerate(self.weights):
            if exclude and i in exclude:
                continue
            current[i] += weight
            total += weight
            if best < 0 or current[i] > current[best]:
                best = i
        if best < 0:
            return None
        current[best] -= total
        return best, self.items[best]
