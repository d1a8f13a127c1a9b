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

Every codec meets the model at one entry, :meth:`TensorProcessor.bind`: named numpy arrays
(with their wire dtypes) become a :class:`Binding` — the checked arrays in the model's order
and what to run them with — to which the codec adds its own answer encoder. The PAI-EAS
protobuf codecs and the Open Inference Protocol (``processors.wire.v2``, chosen by the
``/v2/models/…/infer`` path of the call) share it, so a request means the same to the model
whichever way it came, and calls of both kinds batch together; :meth:`TensorProcessor.infer`
is the same entry for code that holds arrays already.

Bad input raises :class:`BadRequest` (or the wire's ``TensorError`` / ``V2Error``); ``process``
answers it 400 with the message, which names the input or field at fault (the
runtime wraps it as ``{"error": …}`` for v2 calls).
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
from processors.wire import tensors, v2
from processors.wire.tensors import TensorError

log = logging.getLogger(__name__)

BAD_REQUEST = 400
OK = 200

Array = np.ndarray[Any, Any]
# A model's outputs: names (or positions) → arrays, in the model's order.
Outputs = Mapping[str | int, Array]
# (body, status), or with response headers (the v2 binary tensor extension needs one).
Answer = tuple[bytes, int] | tuple[bytes, int, dict[str, str]]
# Named inputs with the wire dtype each was sent as (ArrayDataType codes).
Given = Mapping[str, tuple[Array, int]]


class BadRequest(ValueError):
    """The request cannot be run as it is; the message names the input or field at fault."""


# What a caller's bad input raises, in any codec: answered 400 with the message.
INPUT_ERRORS = (BadRequest, TensorError, v2.V2Error)


@dataclass(frozen=True)
class Binding:
    """Named inputs checked against the model: what :meth:`TensorProcessor.run` takes."""

    inputs: tuple[Array, ...]  # in the order the processor's run() takes them
    target: Any = None
    group: Hashable | None = None

    def call(self, answer: Callable[[Outputs], Answer]) -> Call:
        return Call(self.inputs, answer, self.target, self.group)


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
    """Base of the tensor processors: subclasses implement ``parse`` (their own wire format),
    ``bind`` and ``run``, and for the Open Inference Protocol ``platform`` and
    ``v2_tensors``."""

    # The Open Inference Protocol's name for the framework ("onnxruntime_onnx"); "" where the
    # processor does not speak the protocol.
    platform = ""

    def parse(self, body: bytes, ctx: RequestContext) -> Call | Answer:
        """Turn a request into a Call, or answer it at once (a GET, say)."""
        raise NotImplementedError

    def bind(self, given: Given, parameters: Mapping[str, Any]) -> Binding:
        """Check named inputs against the model; ``parameters`` are the request's options
        (a TensorFlow signature name, say)."""
        raise NotImplementedError

    def run(self, call: Call, inputs: tuple[Array, ...]) -> Outputs:
        """Run the model on ``inputs`` (``call``'s own, or a batch built from calls like it)."""
        raise NotImplementedError

    def output_name(self, key: str | int) -> str:
        """The name an output travels under where outputs are named (positions: output_0)."""
        return key if isinstance(key, str) else f"output_{key}"

    def v2_tensors(self) -> tuple[list[v2.TensorMetadata], list[v2.TensorMetadata]]:
        """The model's inputs and outputs for the protocol's metadata."""
        raise NotImplementedError

    def v2_metadata(self) -> dict[str, Any] | None:
        if not self.platform:
            return None
        inputs, outputs = self.v2_tensors()
        return {
            "platform": self.platform,
            "inputs": [t.model_dump() for t in inputs],
            "outputs": [t.model_dump() for t in outputs],
        }

    def infer(
        self, inputs: Mapping[str, Array], parameters: Mapping[str, Any] | None = None
    ) -> dict[str, Array]:
        """Run the model on named arrays; its outputs by name. Raises :data:`INPUT_ERRORS`."""
        given = {
            name: (a, tensors.wire_dtype(a.dtype, f"input {name!r}")) for name, a in inputs.items()
        }
        binding = self.bind(given, parameters or {})
        call = binding.call(lambda outputs: (b"", OK))
        return {self.output_name(k): v for k, v in self.run(call, call.inputs).items()}

    def _parse_v2(self, body: bytes, ctx: RequestContext) -> Call:
        decoded = v2.decode_request(body, ctx.headers)
        want = v2.wanted(decoded.request)
        given = {
            name: (array, tensors.wire_dtype(array.dtype, f"input {name!r}"))
            for name, array in decoded.inputs.items()
        }
        binding = self.bind(given, decoded.request.parameters or {})
        found = v2.route(ctx.path)
        version = found.version if found is not None else None

        def answer(outputs: Outputs) -> Answer:
            named = {self.output_name(k): v for k, v in outputs.items()}
            if want.names is not None:
                unknown = [n for n in want.names if n not in named]
                if unknown:
                    raise BadRequest(
                        f"outputs: the model has no output {unknown[0]!r} "
                        f"(it answers {', '.join(named)})"
                    )
                named = {n: named[n] for n in want.names}
            body, headers = v2.encode_response(
                ctx.service, version, decoded.request.id, named, want
            )
            return body, OK, headers

        return binding.call(answer)

    def _parse(self, body: bytes, ctx: RequestContext) -> Call | Answer:
        # The runtime hands a v2 call over with its path; it wraps any refusal as the
        # protocol's {"error": …}.
        try:
            return self._parse_v2(body, ctx) if v2.is_infer(ctx.path) else self.parse(body, ctx)
        except INPUT_ERRORS as exc:
            return str(exc).encode(), BAD_REQUEST
        except DecodeError as exc:
            return f"malformed request body: {exc}".encode(), BAD_REQUEST

    def _answer(self, call: Call, outputs: Outputs) -> Answer:
        try:
            return call.answer(outputs)
        except INPUT_ERRORS as exc:
            return str(exc).encode(), BAD_REQUEST

    def _run_alone(self, call: Call) -> Answer:
        try:
            outputs = self.run(call, call.inputs)
        except INPUT_ERRORS as exc:
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
