"""The contract every built-in processor passes, whatever its framework.

A test module per framework builds a real model at test time with the real library, then
hands a :class:`Case` to :func:`check_contract`. The contract is what the instance runtime
relies on (processors/base.py): ``load`` once, ``process`` from many threads at once,
``process_batch`` (when present) giving each item the answer ``process`` gives it alone, and
bad input answered 400 with a message naming the problem — never an exception that escapes
as anything else, never a processor that stops answering afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from processors import registry
from processors.base import Processor, RequestContext, normalize_result

BAD_REQUEST = 400


@dataclass
class Case:
    code: str  # the processor code a description names
    model_entry: str  # local path handed to load()
    request: bytes  # a valid request body
    check: Callable[[bytes], None]  # asserts the answer to `request` is right
    model_config: str = ""
    # Bodies that must be answered 400, each with a text the answer must contain.
    bad_requests: list[tuple[bytes, str]] = field(default_factory=list)
    method: str = "POST"
    # False where the framework's kernels give other bits for another batch size (TensorFlow's
    # matrix product does): each batched answer must then pass `check` instead of equalling
    # the lone answer byte for byte.
    batch_exact: bool = True


def context(service: str = "contract", method: str = "POST") -> RequestContext:
    return RequestContext(service, f"/api/predict/{service}", method=method)


def call(processor: Processor, body: bytes, ctx: RequestContext | None = None) -> tuple[bytes, int]:
    """What the runtime does with one request: an exception becomes 400 with its message."""
    try:
        return normalize_result(processor.process(body, ctx or context()))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".encode(), BAD_REQUEST


def load(case: Case) -> Processor:
    processor = registry.create(case.code)
    processor.load(case.model_entry, case.model_config)
    return processor


def check_contract(case: Case, *, threads: int = 8, calls: int = 64) -> Processor:
    processor = load(case)
    body, status = call(processor, case.request)
    assert status == 200, body[:500]
    case.check(body)

    # Concurrent calls all get the same, right answer.
    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(lambda _: call(processor, case.request), range(calls)))
    assert {a for a in answers} == {(body, 200)}

    for bad, needle in case.bad_requests:
        answer, status = call(processor, bad)
        assert status == BAD_REQUEST, (bad[:80], status, answer[:300])
        assert needle.encode() in answer, (needle, answer[:300])
    # ...and the processor still serves afterwards.
    assert call(processor, case.request) == (body, 200)

    batch = getattr(processor, "process_batch", None)
    if batch is not None:
        results = [normalize_result(r) for r in batch([case.request] * 3, [context()] * 3)]
        if case.batch_exact:
            assert results == [(body, 200)] * 3
        else:
            assert [status for _, status in results] == [200] * 3
            for answer, _ in results:
                case.check(answer)
    return processor
