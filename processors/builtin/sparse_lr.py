"""The ``parameter_sever`` processor (PAI-EAS's spelling; ``parameter_server`` too): sparse
logistic regression for very large models.

Request: ``[{"1": 1, "2": 1}, {"1": 1, "3": 0.5}]`` — per record, feature id → value.
Answer: a JSON list with one number per record, the probability
``sigmoid(b + Σ w[id] · value)``; ids the model has no weight for contribute nothing. A body
holding one object is answered with one number.

The model is a directory (or an archive of one) holding two NumPy ``.npy`` files of equal
length: ``feature_ids.npy`` (int64, sorted ascending, no id twice) and ``weights.npy``
(float64 or float32) — ``weights[i]`` is the weight of ``feature_ids[i]``; an id of -1, when
present (it sorts first), carries the bias ``b``. Both are memory-mapped, never read into
the process: every worker thread reads the one mapping, and every worker process maps the
same page-cache pages, so a model of hundreds of millions of weights occupies its file size
in memory once per machine. Lookups are binary searches over the contiguous id array (about
15 times faster than over the strided id field of one structured array of (id, weight)).

Make one from a text file of ``feature_id weight`` lines (and an optional ``bias <value>``
line)::

    python -m processors.builtin.sparse_lr weights.txt model/
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from processors.base import ProcessorLoadError
from processors.builtin.tabular import InputError, RecordsProcessor, find_model_file, number

BIAS_ID = -1
IDS_FILE = "feature_ids.npy"
WEIGHTS_FILE = "weights.npy"


def _mapped(path: Path) -> Any:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ProcessorLoadError(f"{path.name} is not a NumPy .npy file: {exc}") from None


class SparseLRProcessor(RecordsProcessor):
    def load(self, model_entry: str, model_config: str) -> None:
        entry = Path(model_entry)
        if entry.is_file() and entry.name not in (IDS_FILE, WEIGHTS_FILE):
            raise ProcessorLoadError(
                f"{entry.name} is not a sparse LR model: expected a directory (or an archive "
                f"of one) holding {IDS_FILE} and {WEIGHTS_FILE}"
            )
        if entry.is_file():
            entry = entry.parent
        ids_path = find_model_file(str(entry), (IDS_FILE,), "sparse LR").resolve()
        root = ids_path.parent
        weights_path = root / WEIGHTS_FILE
        if not weights_path.is_file():
            raise ProcessorLoadError(
                f"model_entry: {WEIGHTS_FILE} must sit beside {IDS_FILE}, found none in {root}"
            )
        ids = _mapped(ids_path)
        weights = _mapped(weights_path)
        if ids.ndim != 1 or ids.dtype.kind != "i":
            raise ProcessorLoadError(
                f"{IDS_FILE} holds {ids.dtype} of shape {ids.shape}: expected 1-D integers"
            )
        if weights.ndim != 1 or weights.dtype.kind != "f":
            raise ProcessorLoadError(
                f"{WEIGHTS_FILE} holds {weights.dtype} of shape {weights.shape}: "
                f"expected 1-D floats"
            )
        if len(ids) != len(weights):
            raise ProcessorLoadError(
                f"{IDS_FILE} has {len(ids)} ids but {WEIGHTS_FILE} {len(weights)} weights"
            )
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise ProcessorLoadError(
                f"{IDS_FILE}: ids must be sorted ascending with no id twice "
                f"(write the model with `python -m processors.builtin.sparse_lr`)"
            )
        self.root = root
        self.ids = ids
        self.weights = weights
        has_bias = len(ids) > 0 and int(ids[0]) == BIAS_ID
        self.bias = float(weights[0]) if has_bias else 0.0
        self.count = len(ids) - int(has_bias)

    def row(self, record: dict[str, Any] | list[Any], index: int) -> tuple[Any, Any]:
        if not isinstance(record, dict):
            raise InputError(f"record {index}: expected an object of feature id → value")
        ids = np.empty(len(record), dtype=np.int64)
        values = np.empty(len(record), dtype=np.float64)
        for i, (key, value) in enumerate(record.items()):
            if not (key.isascii() and key.isdigit()):
                raise InputError(
                    f"record {index}: feature id {key!r} is not a non-negative integer"
                )
            ids[i] = int(key)
            values[i] = number(value, f"record {index}: feature {key!r}")
        return ids, values

    def score(self, rows: list[Any]) -> list[Any]:
        if not rows:
            return []
        ids = np.concatenate([r[0] for r in rows])
        values = np.concatenate([r[1] for r in rows])
        owner = np.repeat(np.arange(len(rows)), [len(r[0]) for r in rows])
        if len(self.ids):
            positions = np.searchsorted(self.ids, ids)
            positions[positions >= len(self.ids)] = 0
            found = self.ids[positions] == ids
            terms = np.where(found, np.asarray(self.weights[positions], dtype=np.float64), 0.0)
        else:
            terms = np.zeros(len(ids))
        # bincount adds each record's terms in order: the same sum alone or in a batch.
        sums = np.bincount(owner, weights=terms * values, minlength=len(rows))
        return [_sigmoid(self.bias + float(s)) for s in sums]

    def describe(self) -> dict[str, Any]:
        return {
            "model": "sparse logistic regression",
            "weights": self.count,
            "bias": self.bias,
            "files": [IDS_FILE, WEIGHTS_FILE],
        }


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def convert(source: Path, dest: Path) -> int:
    """Write the model directory ``dest`` from a text file of ``feature_id weight`` lines
    (blank lines and ``#`` comments skipped; ``bias <value>`` sets the bias). Returns the
    number of weights."""
    ids: list[int] = []
    weights: list[float] = []
    bias: float | None = None
    with source.open() as lines:
        for line_number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = text.split()
            try:
                if len(parts) != 2:
                    raise ValueError
                weight = float(parts[1])
                if parts[0] == "bias":
                    bias = weight
                    continue
                feature = int(parts[0])
            except ValueError:
                raise ValueError(
                    f"{source}:{line_number}: expected 'feature_id weight', got {text!r}"
                ) from None
            if feature < 0:
                raise ValueError(f"{source}:{line_number}: feature ids are non-negative: {feature}")
            ids.append(feature)
            weights.append(weight)
    id_array = np.asarray(ids, dtype=np.int64)
    order = np.argsort(id_array, kind="stable")
    id_array = id_array[order]
    weight_array = np.asarray(weights, dtype=np.float64)[order]
    twice = id_array[1:][id_array[1:] == id_array[:-1]]
    if len(twice):
        raise ValueError(f"{source}: feature id {int(twice[0])} is given more than once")
    if bias is not None:
        id_array = np.concatenate([[BIAS_ID], id_array])
        weight_array = np.concatenate([[bias], weight_array])
    dest.mkdir(parents=True, exist_ok=True)
    np.save(dest / IDS_FILE, id_array, allow_pickle=False)
    np.save(dest / WEIGHTS_FILE, weight_array, allow_pickle=False)
    return len(ids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m processors.builtin.sparse_lr",
        description="Convert a text file of 'feature_id weight' lines into the model "
        "directory the parameter_sever processor memory-maps.",
    )
    parser.add_argument("source", type=Path, help="text file: 'feature_id weight' per line")
    parser.add_argument("dest", type=Path, help=f"the model directory to write ({IDS_FILE}, …)")
    args = parser.parse_args(argv)
    try:
        count = convert(args.source, args.dest)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"wrote {args.dest}: {count} weights")


if __name__ == "__main__":
    main()
