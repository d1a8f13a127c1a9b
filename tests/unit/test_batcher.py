"""The batcher on its own: what fills a batch, what each caller gets back, and who is told
when a batch or one of its items fails. A real event loop and worker threads; the batch
method is a plain function that records what it saw."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from eas_core.runtime.batcher import Batcher
from eas_core.runtime.handoff import WorkerThreads
from eas_core.runtime.occupancy import Occupancy
from processors.base import Reply, RequestContext

CTX = RequestContext("s", "/api/predict/s")
LATER = 3600.0  # a deadline nobody reaches in a test


class Recorder:
    """A batch method answering each body upper-cased; ``answer`` may replace it."""

    def __init__(self, answer: Callable[[Sequence[bytes]], Any] | None = None) -> None:
        self.batches: list[list[bytes]] = []
        self.answer = answer or (lambda bodies: [(b.upper(), 200) for b in bodies])

    def __call__(self, bodies: Sequence[bytes], ctxs: Sequence[RequestContext]) -> Any:
        assert len(ctxs) == len(bodies)
        self.batches.append(list(bodies))
        return self.answer(bodies)


def run(recorder: Recorder, script: Callable[[Batcher], Any], **settings: int) -> Any:
    async def main() -> Any:
        threads = WorkerThreads(settings.get("threads", 2), name="test-worker")
        try:
            observed: list[int] = []
            batcher = Batcher(
                recorder,
                threads,
                Occupancy(2, 1000),
                max_size=settings.get("max_size", 4),
                timeout_ms=settings.get("timeout_ms", 10_000),
                observe=observed.append,
            )
            result = await asyncio.wait_for(script(batcher), 30)
            assert observed == [len(b) for b in recorder.batches]
            return result
        finally:
            threads.shutdown()

    return asyncio.run(main())


async def submit_all(batcher: Batcher, bodies: list[bytes], deadline: float = LATER) -> list[Reply]:
    now = time.monotonic()
    futures = [batcher.submit(body, CTX, now + deadline) for body in bodies]
    return list(await asyncio.gather(*futures))


def test_a_full_batch_runs_at_once_and_each_caller_gets_its_own_answer() -> None:
    recorder = Recorder()
    # A ten-minute timeout: only filling the batch can run it within the script's 30 s.
    replies = run(recorder, lambda b: submit_all(b, [b"a", b"b", b"c", b"d"]), timeout_ms=600_000)
    assert [r.body for r in replies] == [b"A", b"B", b"C", b"D"]
    assert recorder.batches == [[b"a", b"b", b"c", b"d"]]


def test_the_timeout_flushes_a_partial_batch() -> None:
    recorder = Recorder()
    replies = run(recorder, lambda b: submit_all(b, [b"x", b"y"]), timeout_ms=50)
    assert [r.body for r in replies] == [b"X", b"Y"]
    assert recorder.batches == [[b"x", b"y"]]


def test_timeout_zero_batches_only_what_arrived_together() -> None:
    recorder = Recorder()

    async def script(batcher: Batcher) -> None:
        await submit_all(batcher, [b"1", b"2"])  # the same turn of the loop: one batch
        await submit_all(batcher, [b"3"])  # later: a batch of its own, with no wait

    run(recorder, script, timeout_ms=0)
    assert recorder.batches == [[b"1", b"2"], [b"3"]]


def test_a_bad_item_fails_alone_and_an_exception_fails_the_batch() -> None:
    def answer(bodies: Sequence[bytes]) -> list[Any]:
        if b"boom" in bodies:
            raise RuntimeError("boom in the batch")
        return [(b"no", 400) if b == b"bad" else (b, 0) for b in bodies]

    recorder = Recorder(answer)

    async def script(batcher: Batcher) -> tuple[list[Reply], list[Reply]]:
        return (
            await submit_all(batcher, [b"ok", b"bad", b"fine", b"good"]),
            await submit_all(batcher, [b"ok", b"boom", b"fine", b"good"]),
        )

    mixed, failed = run(recorder, script)
    assert [(r.body, r.status) for r in mixed] == [
        (b"ok", 200),
        (b"no", 400),
        (b"fine", 200),
        (b"good", 200),
    ]
    assert {(r.body, r.status) for r in failed} == {(b"RuntimeError: boom in the batch", 400)}


def test_a_wrong_number_of_answers_or_a_malformed_one_is_named() -> None:
    short = Recorder(lambda bodies: [(b"only one", 200)])
    replies = run(short, lambda b: submit_all(b, [b"a", b"b", b"c", b"d"]))
    assert {r.status for r in replies} == {500}
    assert b"process_batch answered 1 for a batch of 4 requests" in replies[0].body

    odd = Recorder(lambda bodies: [(b"fine", 200), 12345, (b"fine", 200), (b"fine", 200)])
    replies = run(odd, lambda b: submit_all(b, [b"a", b"b", b"c", b"d"]))
    assert [r.status for r in replies] == [200, 400, 200, 200]
    assert b"process() must return bytes or str, got int" in replies[1].body


def test_requests_past_their_deadline_are_left_out_of_the_batch() -> None:
    recorder = Recorder()

    async def script(batcher: Batcher) -> list[Reply]:
        now = time.monotonic()
        gone = batcher.submit(b"late", CTX, now - 1)  # its caller was answered 408 already
        live = batcher.submit(b"live", CTX, now + LATER)
        return list(await asyncio.gather(gone, live))

    late, live = run(recorder, script, timeout_ms=20)
    assert late.status == 408 and live.body == b"LIVE"
    assert recorder.batches == [[b"live"]]


def test_while_every_thread_is_busy_the_next_batch_keeps_filling() -> None:
    """With the one worker thread held by a batch, requests arriving one by one, each after
    the batch timeout, are not run as batches of one: they wait together and run as one
    batch when the thread is free (and no larger than max_size)."""
    release = threading.Event()

    def answer(bodies: Sequence[bytes]) -> list[Any]:
        if b"hold" in bodies:
            release.wait(10)
        return [(b.upper(), 200) for b in bodies]

    recorder = Recorder(answer)

    async def script(batcher: Batcher) -> list[Reply]:
        now = time.monotonic()
        held = batcher.submit(b"hold", CTX, now + LATER)
        await asyncio.sleep(0.05)  # its timeout passed: it runs, holding the thread
        later = []
        for body in [b"a", b"b", b"c", b"d", b"e", b"f"]:
            later.append(batcher.submit(body, CTX, now + LATER))
            await asyncio.sleep(0.03)  # each waits longer than the timeout
        release.set()
        return list(await asyncio.gather(held, *later))

    replies = run(recorder, script, threads=1, max_size=4, timeout_ms=10)
    assert [r.body for r in replies] == [b"HOLD", b"A", b"B", b"C", b"D", b"E", b"F"]
    assert recorder.batches == [[b"hold"], [b"a", b"b", b"c", b"d"], [b"e", b"f"]]
