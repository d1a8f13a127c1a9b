"""Whether a processor call runs on the event loop itself or on a worker thread.

Handing a call to a worker thread and its answer back to the loop costs more than a small
processor's whole call (two thread wake-ups and a loop wake-up). A call on the loop costs
none of that, but while it runs the loop answers nobody else — and a call that never returns
would leave the instance unable to answer even its readiness probe. So only a processor that
declares itself safe to run there (``inline_safe = True``: no I/O, no locks, bounded work)
is ever run on the loop, and only while it keeps being fast:

* it starts on the worker threads; once the mean of its last ``window`` calls is under
  ``budget`` seconds, the next calls run on the loop;
* it goes back to the threads when that moving mean reaches the budget, or at once when
  one call on the loop takes ``OVERRUN_FACTOR`` times the budget (an *overrun*); after
  each overrun the window it must show on the threads doubles (up to ``MAX_WINDOW``), so
  a processor that is only sometimes slow settles on the threads. A single call slower
  than the budget alone does not move it: on a loaded machine a call is sometimes
  preempted mid-way, and that says nothing of the processor;
* a processor that declares ``inline_safe = False``, or says nothing, always runs on the
  worker threads (hung-call detection and the deadline work as they always did).

A slow call therefore holds the loop at most once per promotion, for its own duration.
"""

from __future__ import annotations

import threading
from collections import deque

DEFAULT_BUDGET = 200e-6  # seconds a call may take and still run on the loop
DEFAULT_WINDOW = 64  # fast calls in a row before a processor runs on the loop
MAX_WINDOW = 16 * DEFAULT_WINDOW
OVERRUN_FACTOR = 10  # one call on the loop this many budgets long moves it off at once


def declared_inline_safe(processor: object) -> bool:
    """What the processor (or the user class behind an adapter) says of itself."""
    for candidate in (processor, getattr(processor, "user", None)):
        value = getattr(candidate, "inline_safe", None)
        if isinstance(value, bool):
            return value
    return False


class InlinePolicy:
    """Decides, call by call, where the next processor call runs; fed every call's duration."""

    def __init__(
        self,
        allowed: bool,
        *,
        budget: float = DEFAULT_BUDGET,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if budget <= 0:
            raise ValueError(f"inline budget must be positive, got {budget} s")
        if window < 1:
            raise ValueError(f"inline window must be at least 1 call, got {window}")
        self.allowed = allowed
        self.budget = budget
        self.window = window
        self.inline = False
        self.overruns = 0  # calls on the loop that took OVERRUN_FACTOR budgets or longer
        self._recent: deque[float] = deque()  # the latest calls' durations, oldest first
        self._total = 0.0  # their sum
        self._lock = threading.Lock()  # worker threads and the loop both report calls
        # Worked out once per change of ``overruns``, not per call: observe runs every call.
        self._overrun = budget * OVERRUN_FACTOR
        self._required = self.required
        self._allowed_total = budget * self._required

    @property
    def required(self) -> int:
        """Calls the moving window holds: the mean of that many decides."""
        return min(self.window << min(self.overruns, 16), MAX_WINDOW)

    def observe(self, seconds: float, *, inline: bool) -> None:
        """One call ended after ``seconds``; ``inline`` says where it ran."""
        if not self.allowed:
            return
        with self._lock:
            recent = self._recent
            if inline and seconds >= self._overrun:
                self.overruns += 1
                self.inline = False
                recent.clear()
                self._total = 0.0
                self._required = self.required
                self._allowed_total = self.budget * self._required
                return
            recent.append(seconds)
            self._total += seconds
            required = self._required
            if len(recent) > required:  # one in, one out: the window only ever grows
                self._total -= recent.popleft()
            self.inline = len(recent) == required and self._total < self._allowed_total
