"""Server-side batching (SPEC §8, ``rpc.batching``): one future per caller, one processor call
per batch.

Requests are gathered on the event loop until ``rpc.max_batch_size`` of them wait or the
first of them has waited ``rpc.max_batch_timeout`` ms, whichever comes first; the batch then
runs as one ``processor.process_batch(bodies, ctxs)`` on a worker thread, and each caller's
future gets its own answer. With a timeout of 0 a batch holds what arrived in the same turn
of the event loop (requests that were read together), so a lone caller waits for nothing.

While every worker thread runs a batch, the next batch is not handed over when its wait is
over (it would only queue behind them): it keeps filling, up to ``rpc.max_batch_size``, and
runs as soon as a thread is free. Under load batches are therefore as large as the settings
allow — the case batching is for — while a lone request still waits at most the timeout.

A batch holds one worker thread for its whole run, so a batch stuck past the deadline counts
in ``occupancy`` exactly as a stuck single call does. Requests whose caller was already
answered 408 while the batch waited for a thread are left out of it: nobody reads their
answers. An exception from ``process_batch`` fails every request of that batch (400 with the
message), as an exception from ``process`` fails its one request; answers the processor gives
per item fail only their own request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from eas_core.runtime.handoff import WorkerThreads
from eas_core.runtime.occupancy import Occupancy
from processors.base import BatchMethod, Reply, RequestContext, normalize_reply

log = logging.getLogger(__name__)

BAD_REQUEST = 400
INTERNAL_ERROR = 500
# The answer of a request left out of its batch: its caller was answered 408 already.
EXPIRED = Reply(b"left out of its batch: the request deadline had passed", 408)


@dataclass(slots=True)
class Waiter:
    body: bytes
    ctx: RequestContext
    deadline: float  # time.monotonic() past which the caller has been answered 408
    future: asyncio.Future[Reply]


class Batcher:
    """Gathers requests on the event loop thread; runs batches on the worker threads."""

    def __init__(
        self,
        process_batch: BatchMethod,
        threads: WorkerThreads,
        occupancy: Occupancy,
        *,
        max_size: int,
        timeout_ms: int,
        observe: Callable[[int], None],
    ) -> None:
        self.process_batch = process_batch
        self.threads = threads
        self.occupancy = occupancy
        self.max_size = max_size
        self.timeout = timeout_ms / 1000
        self.observe = observe
        self._pending: list[Waiter] = []
        self._timer: asyncio.Handle | None = None
        self._due = False  # the pending batch's wait is over: it runs when a thread is free
        self.running = 0  # batches on the worker threads

    def submit(self, body: bytes, ctx: RequestContext, deadline: float) -> asyncio.Future[Reply]:
        """Queue one request; the future resolves with its own answer."""
        loop = asyncio.get_running_loop()
        waiter = Waiter(body, ctx, deadline, loop.create_future())
        self._pending.append(waiter)
        if len(self._pending) >= self.max_size:
            self._flush()
        elif self._timer is None and not self._due:
            # The first request of a batch starts its clock.
            self._timer = (
                loop.call_later(self.timeout, self._flush)
                if self.timeout > 0
                else loop.call_soon(self._flush)
            )
        return waiter.future

    def _flush(self) -> None:
        """Hand over the pending batch (its wait is over, or it is full) if a thread is
        free; otherwise it stays due and runs when one is."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = bool(self._pending)
        while self._pending and self.running < self.threads.size:
            batch = self._pending[: self.max_size]
            del self._pending[: self.max_size]
            self.running += 1
            job = self.threads.submit(self.run, batch)
            job.add_done_callback(functools.partial(self._settle, batch))
            # What is left over (more than one batch waited) has waited long enough too.
            self._due = bool(self._pending)

    def run(self, batch: list[Waiter]) -> list[Reply]:
        """On a worker thread: one processor call for the requests still awaited."""
        now = time.monotonic()
        live = [i for i, waiter in enumerate(batch) if waiter.deadline > now]
        replies = [EXPIRED] * len(batch)
        if not live:
            return replies
        bodies = [batch[i].body for i in live]
        ctxs = [batch[i].ctx for i in live]
        self.observe(len(live))
        self.occupancy.enter()
        try:
            results = self.process_batch(bodies, ctxs)
        except Exception as exc:  # the whole batch failed: every one of its callers is told
            log.warning("process_batch raised on a batch of %d: %r", len(live), exc)
            failed = Reply(f"{type(exc).__name__}: {exc}".encode(), BAD_REQUEST)
            for i in live:
                replies[i] = failed
            return replies
        finally:
            self.occupancy.leave()
        if not isinstance(results, list | tuple) or len(results) != len(live):
            count = len(results) if isinstance(results, list | tuple) else type(results).__name__
            wrong = Reply(
                f"process_batch answered {count} for a batch of {len(live)} requests; it must "
                "answer a list with one (data, status) per request, in order".encode(),
                INTERNAL_ERROR,
            )
            for i in live:
                replies[i] = wrong
            return replies
        for i, result in zip(live, results, strict=True):
            try:
                replies[i] = normalize_reply(result)
            except TypeError as exc:  # this item's answer is malformed, the others may be fine
                replies[i] = Reply(f"TypeError: {exc}".encode(), BAD_REQUEST)
        return replies

    def _settle(self, batch: list[Waiter], done: asyncio.Future[list[Reply]]) -> None:
        """On the loop thread: hand each caller its answer, and run the next batch if one
        waits for this thread."""
        self.running -= 1
        if self._due or len(self._pending) >= self.max_size:
            self._flush()
        try:
            replies = done.result()
        except BaseException as exc:  # the batch call itself failed
            replies = [Reply(f"the batch did not run: {exc!r}".encode(), INTERNAL_ERROR)] * len(
                batch
            )
        for waiter, reply in zip(batch, replies, strict=True):
            if not waiter.future.done():
                waiter.future.set_result(reply)
