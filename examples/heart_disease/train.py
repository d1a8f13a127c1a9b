"""Training for the heart-disease pipeline: ``train(output_dir) -> (model file, metrics)``.

The model is a scikit-learn pipeline (one-hot for the categorical inputs, scaling for the
numeric ones, logistic regression) exported as PMML with sklearn2pmml (which runs Java), so
the built-in ``pmml`` processor serves it as PAI-EAS serves PMML models: records whose keys
are the 13 inputs in, ``[{"p_0": …, "p_1": …}]`` out. The exporter names the probability
outputs ``probability(0)``/``probability(1)``; :func:`save` renames them ``p_0``/``p_1``, the
names PAI-EAS's PMML examples answer with.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn2pmml import sklearn2pmml
from sklearn2pmml.pipeline import PMMLPipeline

from examples.heart_disease.data import CATEGORICAL, FEATURES, generate

MODEL_FILE = "heart_disease.pmml"
PMML_NS = "http://www.dmg.org/PMML-4_4"


def frame(matrix: np.ndarray) -> pd.DataFrame:
    """Rows with named columns: the names become the PMML model's input fields."""
    return pd.DataFrame(matrix, columns=list(FEATURES))


def fit(matrix: np.ndarray, labels: np.ndarray) -> PMMLPipeline:
    categorical = list(CATEGORICAL)
    numeric = [f for f in FEATURES if f not in CATEGORICAL]
    model = PMMLPipeline(
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
    return model.fit(frame(matrix), pd.Series(labels, name="target"))


def save(model: PMMLPipeline, path: Path) -> Path:
    """Export the model as PMML with its probability outputs named ``p_0`` and ``p_1``."""
    sklearn2pmml(model, str(path))
    ET.register_namespace("", PMML_NS)
    document = ET.parse(path)
    for field in document.iter(f"{{{PMML_NS}}}OutputField"):
        if field.get("feature") == "probability":
            field.set("name", f"p_{field.get('value')}")
    document.write(path, encoding="utf-8", xml_declaration=True)
    return path


def evaluate(model: PMMLPipeline, matrix: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    probability = model.predict_proba(frame(matrix))[:, 1]
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
