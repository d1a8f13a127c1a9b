"""How long to wait before starting again something that keeps failing.

One rule for every supervisor of the installation — the installation's parts, the local
backend's instances, an instance's worker processes: the first restart waits ``initial``
seconds, each consecutive failure doubles the wait, and no wait exceeds ``maximum``. The
supervisor counts the failures (and decides when a run was long enough to start counting
again); ``Backoff`` only turns that count into seconds, so it holds no state and a count kept
on disk (an instance's record) gives the same wait after a controller restart.
"""

from __future__ import annotations

from dataclasses import dataclass

# 2**64 times any sensible initial delay is past every maximum: a larger exponent only risks
# an OverflowError for a process that has crashed for years.
_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
class Backoff:
    initial: float
    maximum: float
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum <= 0:
            raise ValueError(
                f"backoff: initial ({self.initial:g} s) and maximum ({self.maximum:g} s) "
                "must be > 0"
            )
        if self.factor < 1:
            raise ValueError(f"backoff: factor must be at least 1, got {self.factor:g}")

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next start after ``failures`` consecutive failures
        (1 for the first)."""
        doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return min(self.initial * self.factor**doublings, self.maximum)
