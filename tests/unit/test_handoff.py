"""The worker threads' hand-off: every call's answer reaches its caller on the loop, a call
whose caller stopped waiting still runs to its end (and says so), and exceptions travel."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from eas_core.runtime.handoff import WorkerThreads


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 30))


def test_a_burst_of_calls_each_gets_its_own_answer_on_the_loop() -> None:
    async def scenario() -> None:
        threads = WorkerThreads(4, name="t")
        try:
            loop_thread = threading.get_ident()
            seen: list[int] = []

            def call(i: int) -> int:
                assert threading.get_ident() != loop_thread
                return i * i

            futures = [threads.submit(call, i) for i in range(2000)]
            for future in futures:
                future.add_done_callback(lambda _: seen.append(threading.get_ident()))
            assert await asyncio.gather(*futures) == [i * i for i in range(2000)]
            assert set(seen) == {loop_thread}  # resolved on the loop, not on a worker
        finally:
            threads.shutdown()

    run(scenario())


def test_an_exception_reaches_the_caller() -> None:
    async def scenario() -> None:
        threads = WorkerThreads(1, name="t")
        try:

            def fail() -> None:
                raise ValueError("bad input")

            with pytest.raises(ValueError, match="bad input"):
                await threads.submit(fail)
            assert await threads.submit(lambda: "still serving") == "still serving"
        finally:
            threads.shutdown()

    run(scenario())


def test_a_call_given_up_on_runs_to_its_end_and_its_end_is_reported() -> None:
    async def scenario() -> None:
        threads = WorkerThreads(1, name="t")
        try:
            release = threading.Event()
            ended: list[str] = []
            slow = threads.submit(release.wait, 10, ended=lambda: ended.append("slow"))
            slow.set_exception(TimeoutError())  # the caller's deadline passed
            with pytest.raises(TimeoutError):
                await slow
            assert ended == []  # it is still running
            release.set()
            after = threads.submit(time.monotonic, ended=lambda: ended.append("next"))
            await after
            assert ended == ["slow", "next"]  # the slow call ended first, then this one
        finally:
            threads.shutdown()

    run(scenario())


def test_no_calls_are_taken_after_shutdown() -> None:
    async def scenario() -> None:
        threads = WorkerThreads(2, name="t")
        threads.shutdown()
        with pytest.raises(RuntimeError, match="shut down"):
            threads.submit(time.monotonic)

    run(scenario())

    with pytest.raises(ValueError, match="at least 1"):
        WorkerThreads(0, name="t")
