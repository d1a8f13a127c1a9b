"""The ``parameter_sever`` processor (PAI-EAS's spelling; ``parameter_server`` too): sparse
logistic regression for very large models.

Request: ``[{"1": 1, "2": 1}, {"1": 1, "3": 0.5}]`` — per record, feature id → value.
Answer: a JSON list with one number per record, the probability
``sigmoid(b + Σ w[id] · value)``; ids the model has no weight for contribute nothing. A body
holding one object is answered with one number.

The model file is a NumPy ``.npy`` file holding a 1-D structured array with fields
``feature_id`` (int64) and ``weight`` (float64 or float32), sorted by ``feature_id`` with no
id twice; the row whose ``feature_id`` is -1, when present, is the bias ``b``. It is
memory-mapped, never read into the process: every worker thread reads the one mapping, and
every worker process maps the same page-cache pages, so a model of hundreds of millions of
weights occupies its file size in memory once per machine. Lookups are binary searches.

Make one from a text file of ``feature_id weight`` lines (and an optional ``bias <value>``
line)::

    python -m processors.builtin.sparse_lr weights.txt model.npy
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
DTYPE = np.dtype([("feature_id", "<i8"), ("weight", "<f8")])


class SparseLRProcessor(RecordsProcessor):
    def load(self, model_entry: str, model_config: str) -> None:
        path = find_model_file(model_entry, (".npy",), "sparse LR (.npy)")
        try:
            table = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ProcessorLoadError(f"{path.name} is not a NumPy .npy file: {exc}") from None
        names = table.dtype.names or ()
        if table.ndim != 1 or set(names) != {"feature_id", "weight"}:
            raise ProcessorLoadError(
                f"{path.name} holds a {table.dtype} array of shape {table.shape}; the sparse LR "
                f"model is a 1-D array with fields feature_id (int64) and weight (float)"
            )
        if table.dtype["feature_id"].kind != "i" or table.dtype["weight"].kind != "f":
            raise ProcessorLoadError(
                f"{path.name}: feature_id must be an integer field and weight a float field, "
                f"got {table.dtype}"
            )
        ids = table["feature_id"]  # views on the mapping: nothing is copied
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise ProcessorLoadError(
                f"{path.name}: feature_id must be sorted ascending with no id twice "
                f"(write it with `python -m processors.builtin.sparse_lr`)"
            )
        self.path = path
        self.table = table
        self.ids = ids
        self.weights = table["weight"]
        has_bias = len(ids) > 0 and int(ids[0]) == BIAS_ID
        self.bias = float(self.weights[0]) if has_bias else 0.0
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
            "file": self.path.name,
        }


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def convert(source: Path, dest: Path) -> int:
    """Write the ``.npy`` model from a text file of ``feature_id weight`` lines (blank lines
    and ``#`` comments skipped; ``bias <value>`` sets the bias). Returns the weight count."""
    ids: list[int] = []
    weights: list[float] = []
    bias: float | None = None
    with source.open() as lines:
        for number_, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = text.split()
            if len(parts) != 2:
                raise ValueError(f"{source}:{number_}: expected 'feature_id weight', got {text!r}")
            try:
                weight = float(parts[1])
                if parts[0] == "bias":
                    bias = weight
                    continue
                feature = int(parts[0])
            except ValueError:
                raise ValueError(
                    f"{source}:{number_}: expected 'feature_id weight', got {text!r}"
                ) from None
            if feature < 0:
                raise ValueError(f"{source}:{number_}: feature ids are non-negative, got {feature}")
            ids.append(feature)
            weights.append(weight)
    table = np.empty(len(ids) + (bias is not None), dtype=DTYPE)
    offset = int(bias is not None)
    if bias is not None:
        table[0] = (BIAS_ID, bias)
    order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
    table["feature_id"][offset:] = np.asarray(ids, dtype=np.int64)[order]
    table["weight"][offset:] = np.asarray(weights, dtype=np.float64)[order]
    sorted_ids = table["feature_id"][offset:]
    twice = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
    if len(twice):
        raise ValueError(f"{source}: feature id {int(twice[0])} is given more than once")
    with dest.open("wb") as out:
        np.save(out, table, allow_pickle=False)
    return len(ids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m processors.builtin.sparse_lr",
        description="Convert a text file of 'feature_id weight' lines into the .npy model "
        "the parameter_sever processor memory-maps.",
    )
    parser.add_argument("source", type=Path, help="text file: 'feature_id weight' per line")
    parser.add_argument("dest", type=Path, help="the .npy file to write")
    args = parser.parse_args(argv)
    try:
        count = convert(args.source, args.dest)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"wrote {args.dest}: {count} weights")


if __name__ == "__main__":
    main()
