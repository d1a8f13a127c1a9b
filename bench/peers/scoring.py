"""The models' code every peer shares, so that the peers differ only in how they serve.

A heart-disease request is a JSON list of records keyed by input name and is answered with
one ``{"p_0": …, "p_1": …}`` per record, the way the built-in ``sklearn`` processor answers
(records through a pandas DataFrame into ``predict_proba``). An MLP request is
``{"inputs": {"x": [[64 numbers]]}}`` and is answered ``{"outputs": {"y": [[10 numbers]]}}``,
the JSON form of the built-in ``onnx`` processor. Frameworks with their own request format
(MLServer's V2 tensors, BentoML's named fields) call the same models from their own shapes.

Imported only in the peers' virtualenv (pandas, scikit-learn, ONNX Runtime live there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class HeartModel:
    def __init__(self, path: Path | str) -> None:
        import joblib

        self.model = joblib.load(path)
        self.features = [str(n) for n in self.model.feature_names_in_]
        self.keys = [f"p_{c}" for c in self.model.classes_]

    def probabilities(self, rows: list[list[float]]) -> np.ndarray:
        import pandas as pd

        result: np.ndarray = self.model.predict_proba(pd.DataFrame(rows, columns=self.features))
        return result

    def answer(self, records: list[dict[str, Any]]) -> list[dict[str, float]]:
        rows = [[record[f] for f in self.features] for record in records]
        return [dict(zip(self.keys, map(float, p), strict=True)) for p in self.probabilities(rows)]

    def answer_json(self, body: bytes) -> bytes:
        return dumps(self.answer(json.loads(body)))


class MLPModel:
    def __init__(self, path: Path | str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One core per server: ONNX Runtime's own thread pool would fight the event loop.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, x: np.ndarray) -> np.ndarray:
        result: np.ndarray = self.session.run(["y"], {"x": x})[0]
        return result

    def run_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Several requests' rows in one run, split back per request."""
        sizes = [len(x) for x in inputs]
        outputs = self.run(np.concatenate(inputs))
        return np.split(outputs, np.cumsum(sizes)[:-1])

    @staticmethod
    def parse(body: bytes) -> np.ndarray:
        return np.asarray(json.loads(body)["inputs"]["x"], dtype=np.float32)

    @staticmethod
    def encode(y: np.ndarray) -> bytes:
        return dumps({"outputs": {"y": y.tolist()}})

    def answer_json(self, body: bytes) -> bytes:
        return self.encode(self.run(self.parse(body)))


def dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()
