"""What the tabular processors share: JSON records in, JSON answers out.

A request body is a JSON list of records — objects keyed by input name,
``[{"sex": 0, "cp": 1}, {"sex": 1, "cp": 0}]`` — or, where the model knows its input order,
a list of value lists ``[[0, 1], [1, 0]]``. The answer is a JSON list with one object per
record, in order; a body holding one object (not a list) is answered with one object.

Bad input is answered 400 with ``{"error": "..."}`` naming the record and field, and the
instance keeps serving. A subclass turns each record into its model's row
(:meth:`RecordsProcessor.row`), scores rows (:meth:`RecordsProcessor.score`) and describes
its inputs for ``GET`` (:meth:`RecordsProcessor.describe`); this base does the rest,
including ``process_batch``: the records of every request of a batch are scored in one call
and the answers split back per request.

The Open Inference Protocol (``/v2/models/{service}/infer``) maps where the model takes a row
of numbers: one 2-D numeric input tensor (any name; the metadata calls it ``input-0``) holds a
row of features per record, in training order; the answer is ``predict_proba`` [N, classes]
(FP64, in the order of the model's classes) for a classifier with probabilities, else
``predict`` [N]. The platform is the processor's framework (``sklearn``, ``xgboost``,
``lightgbm``), as MLServer names it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from processors.base import ProcessorLoadError, RequestContext
from processors.wire import jsonwire, v2

log = logging.getLogger(__name__)

BAD_REQUEST = 400


class InputError(ValueError):
    """A request the processor refuses: answered 400 with this message."""


# What a request's scored rows are answered with: (body, status) or (body, status, headers).
Finish = Callable[[list[Any]], tuple[Any, ...]]
REFUSED = (InputError, v2.V2Error)


def _missing(value: Any) -> Any:
    """A prediction as an array element: a non-finite score (null in JSON) is NaN again."""
    return math.nan if value is None else value


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def dumps(document: Any) -> bytes:
    """Compact JSON, as PAI-EAS answers (``[{"p_0":0.99,"p_1":0.01}]``)."""
    return jsonwire.dumps(document)


def parse_records(body: bytes) -> tuple[list[Any], bool]:
    """``(records, single)``: each record is a dict or a list; ``single`` when the body was
    one object rather than a list."""
    try:
        document = jsonwire.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"the body must be JSON, a list of records: {exc}") from None
    if isinstance(document, dict):
        return [document], True
    if not isinstance(document, list) or not document:
        raise InputError("the body must be a non-empty JSON list of records")
    for index, record in enumerate(document):
        if not isinstance(record, dict | list):
            raise InputError(
                f"record {index}: expected an object (input name → value) or a list of values, "
                f"got {_kind(record)}"
            )
    return document, False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def number(value: Any, where: str, *, missing: float | None = None) -> float:
    """A JSON value as a float input: numbers and booleans; null only when ``missing`` is
    given (then it stands for the missing value)."""
    if value is None and missing is not None:
        return missing
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    raise InputError(f"{where}: expected a number, got {_kind(value)} {json.dumps(value)[:40]}")


def find_model_file(entry: str, suffixes: Sequence[str], what: str) -> Path:
    """The model file ``entry`` names: itself, or the one file with one of ``suffixes`` in
    the directory it names (the unpacked package of an archive)."""
    if not entry:
        raise ProcessorLoadError(f"model_path: the {what} processor needs a model file")
    path = Path(entry)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ProcessorLoadError(f"model_entry: {entry} does not exist")
    candidates = sorted(
        p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(tuple(suffixes))
    )
    wanted = ", ".join(f"*{s}" for s in suffixes)
    if not candidates:
        raise ProcessorLoadError(
            f"model_entry: the model package holds no {what} file ({wanted}); "
            f"name the file with model_entry"
        )
    if len(candidates) > 1:
        names = ", ".join(str(p.relative_to(path)) for p in candidates[:5])
        raise ProcessorLoadError(
            f"model_entry: the model package holds several {what} files ({names}); "
            f"name one with model_entry"
        )
    return candidates[0]


def plain(value: Any) -> Any:
    """A model's output value as plain JSON: numpy scalars and arrays become Python values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Infinity: a non-finite score answers null
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def class_key(label: Any) -> str:
    """The answer key of one class's probability: ``p_0``, ``p_1``, ``p_setosa``."""
    label = plain(label)
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return f"p_{label}"


class RecordsProcessor:
    """The request and batch handling of every tabular processor (see the module docs)."""

    def load(self, model_entry: str, model_config: str) -> None:
        raise NotImplementedError

    def row(self, record: dict[str, Any] | list[Any], index: int) -> Any:
        """One record as the model's input row; raise :class:`InputError` naming the field."""
        raise NotImplementedError

    def score(self, rows: list[Any]) -> list[Any]:
        """One answer object per row, in order."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What ``GET`` on the service answers: the model's inputs and outputs."""
        raise NotImplementedError

    # The protocol's platform for this framework (MLServer's names); "" where it does not map.
    platform = ""

    def row_width(self) -> int | None:
        """How many values a row holds, when the model says."""
        return None

    def prediction_datatype(self) -> str:
        """The protocol datatype of ``predict`` (models without class probabilities)."""
        return "FP64"

    def keys_of(self) -> list[str]:
        """The answer keys of the class probabilities, [] where there are none."""
        return list(getattr(self, "keys", []))

    def rows(self, body: bytes) -> tuple[list[Any], bool]:
        records, single = parse_records(body)
        return [self.row(record, index) for index, record in enumerate(records)], single

    def prepare(self, body: bytes, ctx: RequestContext) -> tuple[list[Any], Finish]:
        """A request's rows, and how to answer it once they are scored."""
        if v2.is_infer(ctx.path):
            return self._v2_rows(body, ctx)
        rows, single = self.rows(body)
        return rows, lambda answers: (dumps(answers[0] if single else answers), 200)

    def process(self, body: bytes, ctx: RequestContext) -> tuple[Any, ...]:
        if ctx.method == "GET":
            return dumps(self.describe()), 200
        try:
            rows, finish = self.prepare(body, ctx)
            return finish(self.score(rows))
        except REFUSED as exc:
            return error_body(str(exc)), BAD_REQUEST

    def process_batch(
        self, bodies: list[bytes], ctxs: list[RequestContext]
    ) -> list[tuple[Any, ...]]:
        """Score the records of every request in one call; each request gets its own answer
        (or its own 400). Should the batch as a whole be refused, each request is scored on
        its own, so one caller's bad record never fails the others."""
        results: list[tuple[Any, ...] | None] = [None] * len(bodies)
        parsed: list[tuple[int, list[Any], Finish]] = []
        for i, (body, ctx) in enumerate(zip(bodies, ctxs, strict=True)):
            if ctx.method == "GET":
                results[i] = self.process(body, ctx)
                continue
            try:
                rows, finish = self.prepare(body, ctx)
            except REFUSED as exc:
                results[i] = (error_body(str(exc)), BAD_REQUEST)
                continue
            parsed.append((i, rows, finish))
        if parsed:
            try:
                answers = self.score([row for _, rows, _ in parsed for row in rows])
            except InputError as exc:
                log.info("a batch was refused (%s); scoring its requests one by one", exc)
                for i, _, _ in parsed:
                    results[i] = self.process(bodies[i], ctxs[i])
            else:
                start = 0
                for i, rows, finish in parsed:
                    mine = answers[start : start + len(rows)]
                    start += len(rows)
                    try:
                        results[i] = finish(mine)
                    except REFUSED as exc:
                        results[i] = (error_body(str(exc)), BAD_REQUEST)
        return [r for r in results if r is not None]

    # -- the Open Inference Protocol ------------------------------------------------------
    def v2_metadata(self) -> dict[str, Any] | None:
        if not self.platform:
            return None
        width = self.row_width()
        keys = self.keys_of()
        output = (
            v2.metadata("predict_proba", "FP64", [None, len(keys)])
            if keys
            else v2.metadata("predict", self.prediction_datatype(), [None])
        )
        return {
            "platform": self.platform,
            "inputs": [v2.metadata("input-0", "FP64", [None, width]).model_dump()],
            "outputs": [output.model_dump()],
        }

    def _v2_rows(self, body: bytes, ctx: RequestContext) -> tuple[list[Any], Finish]:
        decoded = v2.decode_request(body, ctx.headers)
        want = v2.wanted(decoded.request)
        if len(decoded.inputs) != 1:
            raise InputError(
                f"inputs: this model takes one 2-D tensor of features, got {len(decoded.inputs)}"
            )
        name, array = next(iter(decoded.inputs.items()))
        if array.ndim != 2 or array.dtype.kind not in "biuf":
            raise InputError(
                f"input {name!r}: must be a 2-D numeric tensor [records, features], got "
                f"{v2.datatype_of(array.dtype, name)} {list(array.shape)}"
            )
        rows = [self.row(values, index) for index, values in enumerate(array.tolist())]
        keys = self.keys_of()
        found = v2.route(ctx.path)
        version = found.version if found is not None else None

        def finish(answers: list[Any]) -> tuple[Any, ...]:
            outputs: dict[str, np.ndarray[Any, Any]] = (
                {"predict_proba": np.array([[a[k] for k in keys] for a in answers], np.float64)}
                if keys
                else {"predict": np.array([_missing(a["prediction"]) for a in answers])}
            )
            if want.names is not None:
                unknown = [n for n in want.names if n not in outputs]
                if unknown:
                    raise InputError(
                        f"outputs: the model has no output {unknown[0]!r} "
                        f"(it answers {', '.join(outputs)})"
                    )
            answer, headers = v2.encode_response(
                ctx.service, version, decoded.request.id, outputs, want
            )
            return answer, 200, headers

        return rows, finish
