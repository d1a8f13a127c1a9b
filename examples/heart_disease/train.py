"""Training for the heart-disease pipeline: ``train(output_dir) -> (model file, metrics)``.

The model is a scikit-learn pipeline (one-hot for the categorical inputs, scaling for the
numeric ones, logistic regression), saved with joblib together with its input order, which
is all the processor (processor/app.py) needs to answer PMML-style ``[{"p_0": …, "p_1": …}]``.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from examples.heart_disease.data import CATEGORICAL, FEATURES, generate

MODEL_FILE = "heart_disease.joblib"


def fit(matrix: np.ndarray, labels: np.ndarray) -> Pipeline:
    categorical = [FEATURES.index(f) for f in CATEGORICAL]
    numeric = [i for i in range(len(FEATURES)) if i not in categorical]
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
                        ("numeric", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(max_iter=1000)),
        ]
    )
    return model.fit(matrix, labels)


def save(model: Pipeline, path: Path) -> Path:
    """The file the processor loads: the model and the order of its inputs."""
    joblib.dump({"model": model, "features": list(FEATURES)}, path)
    return path


def evaluate(model: Pipeline, matrix: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    probability = model.predict_proba(matrix)[:, 1]
    return {
        "accuracy": float(accuracy_score(labels, probability >= 0.5)),
        "roc_auc": float(roc_auc_score(labels, probability)),
        "log_loss": float(log_loss(labels, probability)),
        "rows": float(len(labels)),
    }


def train(output_dir: Path) -> tuple[Path, dict[str, float]]:
    """Generate the data, fit, measure on a held-out fifth, save."""
    matrix, labels = generate()
    x_train, x_test, y_train, y_test = train_test_split(
        matrix, labels, test_size=0.2, random_state=0, stratify=labels
    )
    model = fit(x_train, y_train)
    metrics = evaluate(model, x_test, y_test)
    return save(model, Path(output_dir) / MODEL_FILE), metrics
