"""Where processor calls run: on the event loop while a declared-safe processor stays fast,
on the worker threads otherwise."""

from __future__ import annotations

import asyncio
import threading

import pytest

from eas_core.config import RuntimeSettings
from eas_core.http.server import Request
from eas_core.runtime.app import RuntimeApp
from eas_core.runtime.custom import BaseProcessor, _Adapter
from eas_core.runtime.inline import InlinePolicy, declared_inline_safe
from processors.base import RequestContext

WINDOW = 4
BUDGET = 0.005  # seconds; the "slow" calls below wait on an event, far past it


class Recorder:
    """Records which thread ran each call; ``slow`` calls wait for ``gate`` (30 s at most)."""

    inline_safe: bool | None = True

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.gate = threading.Event()
        self.slow = threading.Event()

    def load(self, model_entry: str, model_config: str) -> None:
        pass

    def process(self, body: bytes, ctx: RequestContext) -> tuple[bytes, int]:
        self.threads.append(threading.get_ident())
        if body == b"wait" or self.slow.is_set():
            self.gate.wait(BUDGET * 20 if body != b"wait" else 30)
        return body, 200


class Unsure(Recorder):
    inline_safe = None


class Unsafe(Recorder):
    inline_safe = False


def make_app(processor: Recorder) -> RuntimeApp:
    settings = RuntimeSettings(service_name="s", keepalive_ms=60_000, max_queue_size=8)
    app = RuntimeApp(processor, settings, 2)
    app.inline = InlinePolicy(declared_inline_safe(processor), budget=BUDGET, window=WINDOW)
    app.ready = True
    return app


def predict(body: bytes) -> Request:
    return Request("POST", "/api/predict/s", "", {}, body, True)


async def calls(app: RuntimeApp, count: int, body: bytes = b"x") -> None:
    for _ in range(count):
        answer = await app.handle(predict(body))
        assert answer.status == 200 and answer.body == body


def test_policy_promotes_after_a_window_of_fast_calls_and_demotes_on_an_overrun() -> None:
    policy = InlinePolicy(True, budget=BUDGET, window=WINDOW)
    for _ in range(WINDOW - 1):
        policy.observe(0.0001, inline=False)
    assert not policy.inline
    policy.observe(0.0001, inline=False)
    assert policy.inline
    policy.observe(BUDGET * 10, inline=True)
    assert not policy.inline and policy.overruns == 1
    # After an overrun it must show twice as many fast calls on the threads.
    for _ in range(WINDOW * 2 - 1):
        policy.observe(0.0001, inline=False)
    assert not policy.inline
    policy.observe(0.0001, inline=False)
    assert policy.inline


def test_the_moving_mean_decides_not_one_preempted_call() -> None:
    policy = InlinePolicy(True, budget=BUDGET, window=WINDOW)
    for _ in range(WINDOW):
        policy.observe(0.0001, inline=False)
    policy.observe(BUDGET * 2, inline=True)  # slower than the budget, the mean is not
    assert policy.inline and policy.overruns == 0
    for _ in range(WINDOW):
        policy.observe(BUDGET * 2, inline=True)
    assert not policy.inline and policy.overruns == 0
    for _ in range(WINDOW):
        policy.observe(0.0001, inline=False)
    assert policy.inline


def test_policy_refuses_a_budget_or_window_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="inline budget"):
        InlinePolicy(True, budget=0)
    with pytest.raises(ValueError, match="inline window"):
        InlinePolicy(True, window=0)


def test_only_a_processor_that_declares_itself_safe_may_run_on_the_loop() -> None:
    assert declared_inline_safe(Recorder())
    assert not declared_inline_safe(Unsure())
    assert not declared_inline_safe(Unsafe())

    class User(BaseProcessor):
        inline_safe = True

    assert declared_inline_safe(_Adapter(User()))
    assert not declared_inline_safe(_Adapter(BaseProcessor()))


def test_a_fast_declared_processor_moves_onto_the_loop_and_back_when_it_turns_slow() -> None:
    processor = Recorder()
    app = make_app(processor)

    async def scenario() -> int:
        loop_thread = threading.get_ident()
        await calls(app, WINDOW)
        assert loop_thread not in processor.threads  # measured on the threads first
        await calls(app, 3)
        assert processor.threads[-3:] == [loop_thread] * 3
        processor.slow.set()
        await calls(app, 1)  # overruns the budget on the loop: back to the threads
        assert processor.threads[-1] == loop_thread
        await calls(app, 2)
        assert loop_thread not in processor.threads[-2:]
        return loop_thread

    asyncio.run(scenario())
    assert not app.inline.inline and app.inline.overruns == 1
    assert app.admission.in_flight == 0
    app.close()


@pytest.mark.parametrize("kind", [Unsure, Unsafe])
def test_an_undeclared_or_unsafe_processor_always_runs_on_the_threads(
    kind: type[Recorder],
) -> None:
    processor = kind()
    app = make_app(processor)

    async def scenario() -> None:
        await calls(app, WINDOW * 4)
        assert threading.get_ident() not in processor.threads

    asyncio.run(scenario())
    assert not app.inline.inline
    app.close()


def test_a_slow_call_does_not_hold_other_callers_once_it_is_on_the_threads() -> None:
    processor = Recorder()
    app = make_app(processor)

    async def scenario() -> None:
        await calls(app, WINDOW)
        processor.slow.set()
        await calls(app, 1)  # the one overrun on the loop
        processor.slow.clear()
        waiting = asyncio.ensure_future(app.handle(predict(b"wait")))
        # The blocked call sits on a worker thread; others are still answered meanwhile.
        await calls(app, 3)
        assert not waiting.done()
        processor.gate.set()
        answer = await waiting
        assert answer.status == 200

    asyncio.run(scenario())
    app.close()
