"""The heart-disease processor (allspark): PMML-style answers from a scikit-learn model.

Request:  [{"sex": 0, "cp": 2, "fbs": 0, "restecg": 0, "exang": 0, "slop": 0, "thal": 0,
            "age": 35, "trestbps": 120, "chol": 200, "thalach": 180, "oldpeak": 0, "ca": 0}]
Response: [{"p_0": 0.98, "p_1": 0.02}]    one object per record, in order

A single object (not a list) is answered with a single object. The model file (from
``get_model_path()``) is a joblib bundle ``{"model": estimator, "features": [names]}``.
"""

import json

import joblib
import numpy as np

import allspark


class HeartDiseaseProcessor(allspark.BaseProcessor):
    def initialize(self) -> None:
        bundle = joblib.load(self.get_model_path())
        self.model = bundle["model"]
        self.features = list(bundle["features"])

    def process(self, data: bytes) -> tuple[bytes, int]:
        try:
            document = json.loads(data)
        except ValueError:
            return b'{"error": "the body must be JSON: a list of records"}', 400
        single = isinstance(document, dict)
        rows = [document] if single else document
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows) or not rows:
            return b'{"error": "expected a list of records"}', 400
        missing = sorted({f for r in rows for f in self.features if f not in r})
        if missing:
            return json.dumps({"error": f"missing inputs: {', '.join(missing)}"}).encode(), 400
        try:
            matrix = np.array([[float(r[f]) for f in self.features] for r in rows])
        except (TypeError, ValueError):
            return b'{"error": "every input must be a number"}', 400
        probabilities = self.model.predict_proba(matrix)
        answers = [
            {"p_0": round(float(p[0]), 6), "p_1": round(float(p[1]), 6)} for p in probabilities
        ]
        return json.dumps(answers[0] if single else answers).encode(), 200


if __name__ == "__main__":
    HeartDiseaseProcessor(worker_threads=4).run()
