"""A deterministic synthetic heart-disease data set: no downloads, same rows every time.

The 13 inputs carry the names of the UCI "heart disease" records (as PAI-EAS's PMML example
uses them); their distributions are rough population figures, and the label follows a
plausible clinical rule — older age, male sex, asymptomatic chest pain, exercise angina, ST
depression, a flat or falling ST slope, more blocked vessels, a thallium defect and a low
peak heart rate all raise the risk — through a logistic link with noise, so a model can learn
it but not perfectly.

    sex      1 male, 0 female                 age       years
    cp       chest pain: 0 asymptomatic,      trestbps  resting blood pressure, mm Hg
             1 atypical angina, 2 non-anginal, chol      serum cholesterol, mg/dl
             3 typical angina                  thalach   peak heart rate, bpm
    fbs      fasting blood sugar > 120 mg/dl   oldpeak   ST depression by exercise, mm
    restecg  0 normal, 1 ST-T abnormality,     ca        major vessels coloured, 0-3
             2 left ventricular hypertrophy
    exang    exercise-induced angina, 0/1
    slop     ST slope: 0 up, 1 flat, 2 down
    thal     0 normal, 1 fixed defect, 2 reversible defect
"""

from __future__ import annotations

import numpy as np

FEATURES = (
    "sex", "cp", "fbs", "restecg", "exang", "slop", "thal",
    "age", "trestbps", "chol", "thalach", "oldpeak", "ca",
)  # fmt: skip
CATEGORICAL = ("cp", "restecg", "slop", "thal")
SEED = 20240601


def risk_logit(x: dict[str, np.ndarray]) -> np.ndarray:
    """The rule behind the labels: log-odds of heart disease."""
    return (
        -4.0
        + 0.045 * (x["age"] - 54)
        + 0.9 * x["sex"]
        + 1.4 * (x["cp"] == 0)
        - 0.5 * (x["cp"] == 3)
        + 0.015 * (x["trestbps"] - 131)
        + 0.004 * (x["chol"] - 246)
        + 0.2 * x["fbs"]
        + 0.3 * (x["restecg"] == 1)
        - 0.035 * (x["thalach"] - 150)
        + 0.9 * x["exang"]
        + 0.55 * x["oldpeak"]
        + 0.5 * (x["slop"] == 1)
        + 0.9 * (x["slop"] == 2)
        + 0.85 * x["ca"]
        + 0.7 * (x["thal"] == 1)
        + 1.3 * (x["thal"] == 2)
    )


def generate(n: int = 3000, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` patients: a float matrix with columns in FEATURES order, and 0/1 labels."""
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(54, 9, n).round(), 29, 77)
    x = {
        "sex": rng.binomial(1, 0.68, n),
        "cp": rng.choice(4, n, p=[0.47, 0.17, 0.28, 0.08]),
        "fbs": rng.binomial(1, 0.15, n),
        "restecg": rng.choice(3, n, p=[0.48, 0.50, 0.02]),
        "exang": rng.binomial(1, 0.33, n),
        "slop": rng.choice(3, n, p=[0.46, 0.47, 0.07]),
        "thal": rng.choice(3, n, p=[0.55, 0.06, 0.39]),
        "age": age,
        "trestbps": np.clip(rng.normal(131, 17, n).round(), 94, 200),
        "chol": np.clip(rng.normal(246, 51, n).round(), 126, 564),
        "thalach": np.clip(rng.normal(150 - 0.8 * (age - 54), 20, n).round(), 71, 202),
        "oldpeak": np.clip(rng.exponential(1.0, n), 0, 6.2).round(1),
        "ca": rng.choice(4, n, p=[0.58, 0.22, 0.13, 0.07]),
    }
    probability = 1 / (1 + np.exp(-risk_logit(x)))
    labels = rng.binomial(1, probability)
    matrix = np.column_stack([np.asarray(x[f], dtype=float) for f in FEATURES])
    return matrix, labels.astype(int)


def records(matrix: np.ndarray) -> list[dict[str, float]]:
    """Rows as request records: ``[{"sex": 1.0, "cp": 0.0, ...}, ...]``."""
    return [dict(zip(FEATURES, map(float, row), strict=True)) for row in matrix]
