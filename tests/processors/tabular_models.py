"""Checks of answers against each library's own in-process prediction; the tabular models
themselves are built by bench.tabular_models (shared with the benchmarks) and re-exported
here for the tests."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.tabular_models import TYPED_PMML, heart_pmml, records, sparse_model, typed_pmml

TOLERANCE = 1e-5


def close(actual: Any, expected: Any, where: str = "answer") -> None:
    """Same JSON shape; numbers within TOLERANCE."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), (where, actual, expected)
        for key in expected:
            close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(actual, list) and len(actual) == len(expected), (where, actual)
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float | np.floating):
        assert isinstance(actual, int | float), (where, actual)
        assert math.isclose(actual, float(expected), rel_tol=TOLERANCE, abs_tol=TOLERANCE), (
            where,
            actual,
            expected,
        )
    else:
        assert actual == expected, (where, actual, expected)


def checker(expected: Any) -> Callable[[bytes], None]:
    def check(body: bytes) -> None:
        close(json.loads(body), expected)

    return check


def probabilities(matrix: Any, labels: Sequence[Any]) -> list[dict[str, float]]:
    """Rows of class probabilities keyed as the processors key them (``p_<label>``)."""
    return [
        {f"p_{label}": float(p) for label, p in zip(labels, row, strict=True)} for row in matrix
    ]


def sparse_expected(records: list[dict[str, float]], dense: np.ndarray, bias: float) -> list[float]:
    answers = []
    for record in records:
        z = bias + sum(dense[int(k)] * v for k, v in record.items() if int(k) < len(dense))
        answers.append(1.0 / (1.0 + math.exp(-z)))
    return answers


__all__ = [
    "TOLERANCE",
    "TYPED_PMML",
    "checker",
    "close",
    "heart_pmml",
    "probabilities",
    "records",
    "sparse_expected",
    "sparse_model",
    "typed_pmml",
]
