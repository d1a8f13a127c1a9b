"""What every tensor processor shares: a request becomes a :class:`Call` (checked arrays in
the model's input order), the model runs on the arrays, the call encodes its own answer.

Splitting the work this way gives every framework the same ``process_batch``: calls that
can share a run — same model entry point (``Call.group``), same dtypes and trailing
dimensions, every input with the same number of rows — are concatenated along the first
dimension, run once, and each caller gets its own rows back. A call that fits no group runs
alone, and so does every call of a group whose joint run fails, so one bad request fails
only itself. Whether a joint run gives each caller the very bits of its lone run is up to
the framework's kernels (a matrix product may sum in another order for another batch size);
the tests of each processor check it for their models.

Bad input raises :class:`BadRequest` (or the wire's ``TensorError``); ``process`` answers it
400 with the message, which names the input or field at fault.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from processors.base import RequestContext
from processors.wire.tensors import TensorError

log = logging.getLogger(__name__)

BAD_REQUEST = 400
OK = 200

Array = np.ndarray[Any, Any]
# A model's outputs: names (or positions) → arrays, in the model's order.
Outputs = Mapping[str | int, Array]
Answer = tuple[bytes, int]


class BadRequest(ValueError):
    """The request cannot be run as it is; the message names the input or field at fault."""


@dataclass(frozen=True)
class Call:
    """One request, parsed and checked, ready to run."""

    inputs: tuple[Array, ...]  # in the order the processor's run() takes them
    answer: Callable[[Outputs], Answer]  # encodes the model's outputs for this caller
    target: Any = None  # what the processor's run() calls (a signature, say)
    group: Hashable | None = None  # calls with equal groups may share a run; None: never

    def batch_key(self) -> Hashable | None:
        if self.group is None or not self.inputs:
            return None
        if any(a.ndim == 0 for a in self.inputs):
            return None
        rows = {a.shape[0] for a in self.inputs}
        if len(rows) != 1:
            return None
        return (self.group, tuple((a.dtype.str, a.shape[1:]) for a in self.inputs))

    @property
    def rows(self) -> int:
        return int(self.inputs[0].shape[0])


class TensorProcessor:
    """Base of the tensor processors: subclasses implement ``parse`` and ``run``."""

    def parse(self, body: bytes, ctx: RequestContext) -> Call | Answer:
        """Turn a request into a Call, or answer it at once (a GET, say)."""
        raise NotImplementedError

    def run(self, call: Call, inputs: tuple[Array, ...]) -> Outputs:
        """Run the model on ``inputs`` (``call``'s own, or a batch built from calls like it)."""
        raise NotImplementedError

    def _parse(self, body: bytes, ctx: RequestContext) -> Call | Answer:
        try:
            return self.parse(body, ctx)
        except (BadRequest, TensorError) as exc:
            return str(exc).encode(), BAD_REQUEST
        except DecodeError as exc:
            return f"malformed request body: {exc}".encode(), BAD_REQUEST

    def _answer(self, call: Call, outputs: Outputs) -> Answer:
        try:
            return call.answer(outputs)
        except (BadRequest, TensorError) as exc:
            return str(exc).encode(), BAD_REQUEST

    def _run_alone(self, call: Call) -> Answer:
        try:
            outputs = self.run(call, call.inputs)
        except (BadRequest, TensorError) as exc:
            return str(exc).encode(), BAD_REQUEST
        except Exception as exc:  # the framework refused these inputs: this caller's fault
            log.info("model refused a request: %s", exc)
            return f"the model could not run on these inputs: {_first_lines(exc)}".encode(), (
                BAD_REQUEST
            )
        return self._answer(call, outputs)

    def process(self, body: bytes, ctx: RequestContext) -> Answer:
        call = self._parse(body, ctx)
        if not isinstance(call, Call):
            return call
        return self._run_alone(call)

    def process_batch(
        self, bodies: Sequence[bytes], ctxs: Sequence[RequestContext]
    ) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(bodies)
        groups: dict[Hashable, list[tuple[int, Call]]] = defaultdict(list)
        for index, (body, ctx) in enumerate(zip(bodies, ctxs, strict=True)):
            call = self._parse(body, ctx)
            if not isinstance(call, Call):
                answers[index] = call
                continue
            key = call.batch_key()
            if key is None:
                answers[index] = self._run_alone(call)
            else:
                groups[key].append((index, call))
        for members in groups.values():
            for index, answer in zip(
                [i for i, _ in members], self._run_group([c for _, c in members]), strict=True
            ):
                answers[index] = answer
        return [a for a in answers if a is not None]

    def _run_group(self, calls: list[Call]) -> list[Answer]:
        if len(calls) == 1:
            return [self._run_alone(calls[0])]
        merged = tuple(
            np.concatenate([call.inputs[k] for call in calls]) for k in range(len(calls[0].inputs))
        )
        total = sum(call.rows for call in calls)
        try:
            outputs = self.run(calls[0], merged)
            if any(np.ndim(v) == 0 or len(v) != total for v in outputs.values()):
                raise BadRequest("an output does not keep the batch dimension")
        except Exception as exc:
            # Someone's rows broke the joint run, or the model does not batch: run each alone.
            log.info("batch of %d ran as single calls: %s", len(calls), exc)
            return [self._run_alone(call) for call in calls]
        answers: list[Answer] = []
        start = 0
        for call in calls:
            end = start + call.rows
            answers.append(self._answer(call, {k: v[start:end] for k, v in outputs.items()}))
            start = end
        return answers


def _first_lines(exc: BaseException, limit: int = 1500) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " …"
