"""Which worker threads are inside the processor, and whether all of them are stuck.

Readiness means "can answer now". An instance whose every worker thread has been inside one
processor call for longer than the request deadline (``rpc.keepalive``) can only answer new
requests 408, so it reports itself not ready (the controller drops it from the route table)
and answers 503 at once (the gateway retries another instance). It counts as *stuck* from the
moment the youngest of those calls passed the deadline; any call that ends clears it, so a
processor that is slow but still finishing calls is stuck for short spells at most. How long
it has been stuck goes with the readiness answer; the backend restarts an instance that stays
stuck past its bound.

With several worker processes, each process owns one slot of a table in memory shared by all
of them (mapped by the supervisor before it forks), so whichever process the readiness probe
reaches answers for every one: the kernel spreads connections evenly over the processes, so a
stuck process fails its share of callers and the instance as a whole must be restarted.
"""

from __future__ import annotations

import mmap
import threading
import time
from dataclasses import dataclass
from typing import Any

_SLOT_BYTES = 8  # one double per worker process


class Table:
    """One float per worker process."""

    def __init__(self, buffer: mmap.mmap | bytearray) -> None:
        self.slots: Any = memoryview(buffer).cast("d")  # typeshed types the items as int

    def __len__(self) -> int:
        return len(self.slots)

    def __getitem__(self, index: int) -> float:
        return float(self.slots[index])

    def __setitem__(self, index: int, value: float) -> None:
        self.slots[index] = value


def shared_table(processes: int) -> Table:
    """A table of ``processes`` slots that forked children share with their parent."""
    # An anonymous MAP_SHARED mapping: inherited across fork, no file left behind by a kill.
    return Table(mmap.mmap(-1, _SLOT_BYTES * processes))


def private_table() -> Table:
    return Table(bytearray(_SLOT_BYTES))


@dataclass(frozen=True)
class Stuck:
    reason: str  # e.g. "all 5 worker threads busy for more than 5000 ms"
    seconds: float  # how long it has been so


class Occupancy:
    """The worker threads of this process; ``table[slot]`` is this process's entry.

    A slot holds the monotonic time at which the process turns stuck if no call ends (the
    youngest call's start plus the deadline) while every thread is busy, else 0.
    ``time.monotonic`` is the system-wide CLOCK_MONOTONIC, the same in every process.
    Both ``enter``/``leave`` and ``stuck`` are on the predict path, so they stay small.
    """

    def __init__(
        self,
        threads: int,
        deadline_ms: int,
        table: Table | None = None,
        slot: int = 0,
    ) -> None:
        self.threads = threads
        self.deadline_ms = deadline_ms
        self.table = table if table is not None else private_table()
        self.slot = slot
        self._slots = self.table.slots
        self._deadline = deadline_ms / 1000
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}  # worker thread → when its call began

    @property
    def busy(self) -> int:
        return len(self._started)

    def enter(self) -> None:
        """The calling worker thread starts a processor call."""
        with self._lock:
            started = self._started
            started[threading.get_ident()] = time.monotonic()
            if len(started) >= self.threads:
                self._slots[self.slot] = max(started.values()) + self._deadline

    def leave(self) -> None:
        """The calling worker thread's call ended."""
        with self._lock:
            started = self._started
            if len(started) >= self.threads:
                self._slots[self.slot] = 0.0
            started.pop(threading.get_ident(), None)

    def stuck(self, *, here_only: bool = False) -> Stuck | None:
        """Whether some worker process of the instance (or this one, with ``here_only``) has
        every thread stuck, and since when (the longest-stuck process is the one reported)."""
        slots = self._slots
        if here_only:
            if not slots[self.slot]:
                return None
            candidates = [(self.slot, slots[self.slot])]
        elif not any(slots):
            return None
        else:
            candidates = list(enumerate(slots))
        now = time.monotonic()
        stuck = [(since, index) for index, since in candidates if 0 < since <= now]
        if not stuck:
            return None
        since, index = min(stuck)
        where = f"worker process {index + 1} of {len(slots)}: " if len(slots) > 1 else ""
        return Stuck(
            f"{where}all {self.threads} worker threads busy for more than {self.deadline_ms} ms",
            now - since,
        )
