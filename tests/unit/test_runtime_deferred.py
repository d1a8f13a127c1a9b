"""A call answered from the connection's callback (``immediate`` → DEFERRED): the processor's
answer when it ends, 408 at the deadline while it runs on, its slot freed only at its end."""

from __future__ import annotations

import asyncio

from eas_core.http.server import DEFERRED, Request, Response
from tests.unit.test_runtime_occupancy import DEADLINE_MS, make_app, predict, settle


class Connection:
    """What the HTTP server hands ``immediate``: it records the answers given later."""

    def __init__(self) -> None:
        self.answers: list[tuple[Request, Response]] = []

    def respond(self, request: Request, response: Response) -> None:
        self.answers.append((request, response))


def test_a_call_on_a_thread_is_answered_through_the_connection() -> None:
    app, _ = make_app(threads=2)
    connection = Connection()

    async def scenario() -> object:
        request = predict(b"hello")
        outcome = app.immediate(request, connection)
        await settle(app)
        for _ in range(100):
            if connection.answers:
                break
            await asyncio.sleep(0.01)
        return outcome

    assert asyncio.run(scenario()) is DEFERRED
    [(request, answer)] = connection.answers
    assert request.body == b"hello" and answer.status == 200 and answer.body == b"hello"
    assert app.admission.in_flight == 0
    app.close()


def test_the_deadline_answers_408_and_the_slot_waits_for_the_calls_real_end() -> None:
    app, processor = make_app(threads=2)
    connection = Connection()

    async def scenario() -> tuple[int, int]:
        assert app.immediate(predict(b"wait"), connection) is DEFERRED
        await asyncio.sleep(DEADLINE_MS / 1000 * 3)
        held = app.admission.in_flight  # answered 408, still running on its thread
        processor.gate.set()
        await settle(app)
        await asyncio.sleep(0.05)
        return held, app.admission.in_flight

    held, after = asyncio.run(scenario())
    [(_, answer)] = connection.answers  # the late reply is dropped, not written twice
    assert answer.status == 408 and f"{DEADLINE_MS} ms".encode() in answer.body
    assert (held, after) == (1, 0)
    app.close()


def test_a_wrong_token_is_refused_at_once_without_a_thread() -> None:
    app, _ = make_app(threads=1)
    app.token, app.token_bytes = "secret", b"secret"
    connection = Connection()
    refused = app.immediate(predict(b"x"), connection)
    assert isinstance(refused, Response) and refused.status == 401
    assert connection.answers == [] and app.admission.in_flight == 0
    app.close()
