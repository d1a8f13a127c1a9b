"""The worker threads of an instance process, and the hand-off between them and the loop.

A processor call that may block runs on a worker thread; the event loop waits on an asyncio
future for its answer. ``concurrent.futures.ThreadPoolExecutor`` with ``asyncio.wrap_future``
does this with two futures per call, a callback chain between them and one wake-up of the
loop per answer. Here a call is one item on a queue and one asyncio future, and the answers
that finish while the loop is busy are handed over together: a worker thread wakes the loop
only when no wake-up is pending already, so a burst of answers costs one wake-up, not one
each.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

Ended = Callable[[], None] | None
# A call as queued: its future, what to call once it really ended, the function, its arguments.
_Call = tuple["asyncio.Future[Any]", Ended, Callable[..., Any], tuple[Any, ...]]
# What a worker thread hands back: the call's future and hook, and its result or exception.
_Done = tuple["asyncio.Future[Any]", Ended, Any, BaseException | None]


class WorkerThreads:
    """``threads`` daemon threads running calls for one event loop."""

    def __init__(self, threads: int, *, name: str) -> None:
        if threads < 1:
            raise ValueError(f"worker threads must be at least 1, got {threads}")
        self.loop: asyncio.AbstractEventLoop | None = None  # the first caller's
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._finished: deque[_Done] = deque()
        self._wake_pending = False
        self._closed = False
        self.size = threads
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any, ended: Ended = None) -> asyncio.Future[T]:
        """Run ``fn(*args)`` on a worker thread; call from the loop's thread. The future
        resolves on the loop. Cancelling it, or failing it (a deadline), does not stop the
        call, which runs to its end and whose result is then dropped; ``ended`` is called on
        the loop when it really ended, either way."""
        if self._closed:
            raise RuntimeError("the worker threads are shut down")
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((future, ended, fn, args))
        return future

    def _work(self) -> None:
        calls, finished = self._calls, self._finished
        while True:
            item = calls.get()
            if item is None:
                return
            future, ended, fn, args = item
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to the caller, as an executor would
                result, error = None, exc
            finished.append((future, ended, result, error))
            # The loop clears the flag before it takes the finished calls, so a call added
            # after that is either taken by this round or wakes it again: none is left behind.
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    future.get_loop().call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    return

    def _deliver(self) -> None:
        """On the loop: hand every finished call its result."""
        self._wake_pending = False
        finished = self._finished
        while finished:
            future, ended, result, error = finished.popleft()
            if ended is not None:
                ended()
            if future.done():  # answered already (its deadline passed) or cancelled
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def shutdown(self) -> None:
        """Stop taking calls; the threads end once the calls already queued have run."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._calls.put(None)
