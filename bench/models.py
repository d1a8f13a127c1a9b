"""The models of the benchmark's workloads, made at bench time (no downloads, same bytes from
the same library versions).

    python -m bench.models OUT_DIR        # run with the peers' virtualenv (.venv-bench)

Writes into OUT_DIR:

- ``heart/heart.joblib``: the heart-disease logistic regression, fitted on the data of
  ``examples/heart_disease`` (one-hot for the categorical inputs, scaling for the numeric
  ones), on a pandas DataFrame so the estimator knows its input names — what the built-in
  ``sklearn`` processor needs to take JSON records keyed by name.
- ``mlp/mlp.onnx``: a small MLP (64 → 1024 → 1024 → 10 unless ``--mlp-layers`` says
  otherwise; ReLU, float32, fixed random weights) with a free batch dimension, input ``x``
  and output ``y``: one row is a matrix-vector product per layer, a batch of rows one
  matrix-matrix product, which is why it gains from server-side batching. On one CPU core
  the 1024-wide one gains about 3.7× from batches of 16 in ONNX Runtime itself; a 2048-wide
  one (17 MB of weights, read from memory once per call) about 6×.
- ``reference.json``: the request of each workload and the answer computed here, in process,
  which every server's answer is checked against before it is measured.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bench.peers.scoring import HeartModel, MLPModel
from bench.workloads import MLP_LAYERS, mlp_layers
from examples.heart_disease.data import CATEGORICAL, FEATURES, generate

# The low-risk patient of examples/heart_disease/pipeline.yaml's smoke tests.
HEART_RECORD = {
    "sex": 0, "cp": 2, "fbs": 0, "restecg": 0, "exang": 0, "slop": 0, "thal": 0,
    "age": 38, "trestbps": 118, "chol": 190, "thalach": 178, "oldpeak": 0.0, "ca": 0,
}  # fmt: skip
MLP_SEED = 20240601


def make_heart(directory: Path) -> Path:
    matrix, labels = generate()
    frame = pd.DataFrame(matrix, columns=list(FEATURES))
    numeric = [f for f in FEATURES if f not in CATEGORICAL]
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
                        ("numeric", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(max_iter=1000)),
        ]
    )
    model.fit(frame, labels)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "heart.joblib"
    joblib.dump(model, path)
    return path


def make_mlp(directory: Path, layers: tuple[int, ...] = MLP_LAYERS) -> Path:
    rng = np.random.default_rng(MLP_SEED)
    nodes, weights = [], []
    previous = "x"
    for index, (n_in, n_out) in enumerate(itertools.pairwise(layers)):
        # He-style scale keeps activations in a sane range through the layers.
        w = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
        weights += [
            numpy_helper.from_array(w, f"w{index}"),
            numpy_helper.from_array(b, f"b{index}"),
        ]
        last = index == len(layers) - 2
        out = "y" if last else f"h{index}"
        gemm_out = out if last else f"g{index}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{index}", f"b{index}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [out]))
        previous = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", layers[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", layers[-1]])],
        initializer=weights,
    )
    # Opset 17 and IR 8 load in every ONNX Runtime of the last years.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "mlp.onnx"
    onnx.save(model, str(path))
    return path


def mlp_row() -> list[float]:
    rng = np.random.default_rng(MLP_SEED + 1)
    return [round(float(v), 4) for v in rng.standard_normal(MLP_LAYERS[0])]


def reference(heart: Path, mlp: Path) -> dict[str, Any]:
    """Each workload's request and the answer computed in process."""
    row = mlp_row()
    return {
        "heart": {
            "record": HEART_RECORD,
            "answer": HeartModel(heart).answer([HEART_RECORD])[0],
            "features": list(FEATURES),
        },
        "mlp": {
            "row": row,
            "answer": MLPModel(mlp).run(np.asarray([row], dtype=np.float32))[0].tolist(),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Make the benchmark's models.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--mlp-layers", type=mlp_layers, default=MLP_LAYERS)
    args = parser.parse_args()
    heart = make_heart(args.out / "heart")
    mlp = make_mlp(args.out / "mlp", args.mlp_layers)
    (args.out / "reference.json").write_text(json.dumps(reference(heart, mlp), indent=1))
    print(json.dumps({"heart": str(heart), "mlp": str(mlp)}))


if __name__ == "__main__":
    main()
