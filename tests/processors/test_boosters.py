"""The ``xgboost`` and ``lightgbm`` processors on boosters trained at test time, saved in each
library's own format and through its scikit-learn wrapper; answers compared with the
library's own prediction."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from processors.base import ProcessorLoadError
from tests.processors.contract import Case, call, check_contract, load
from tests.processors.tabular_models import checker, probabilities

xgb = pytest.importorskip("xgboost", reason="the xgboost extra is not installed")
lgb = pytest.importorskip("lightgbm", reason="the lightgbm extra is not installed")

FEATURES = ["age", "income", "visits", "score"]


def data(classes: int = 2, n: int = 300) -> tuple[Any, Any]:
    import pandas as pd

    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(n, len(FEATURES)))
    signal = matrix[:, 0] + 0.5 * matrix[:, 1] - matrix[:, 2]
    labels = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
    return pd.DataFrame(matrix, columns=FEATURES), labels


def rows(frame: Any) -> bytes:
    return json.dumps(frame.to_dict(orient="records")).encode()


BAD = [
    (b"nope", "the body must be JSON"),
    (b'[{"age": "old"}]', "field 'age': expected a number, got a string"),
    (b'[{"agee": 1}]', "unknown field(s) agee"),
    (b"[[1, 2]]", "the model takes 4 values, got 2"),
    (b'[{"age": {"years": 3}}]', "field 'age': expected a number"),
]


def test_xgboost_native_json_binary_classifier(tmp_path: Path) -> None:
    frame, labels = data()
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(frame, labels), 20
    )
    booster.save_model(tmp_path / "model.json")
    sample = frame.iloc[:5]
    p1 = booster.predict(xgb.DMatrix(sample))
    expected = probabilities(np.stack([1 - p1, p1], axis=1), [0, 1])
    check_contract(Case("xgboost", str(tmp_path / "model.json"), rows(sample), checker(expected),
                        bad_requests=BAD))  # fmt: skip


def test_xgboost_ubj_multiclass_with_missing_values(tmp_path: Path) -> None:
    frame, labels = data(classes=3)
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(frame, labels), 10
    )
    booster.save_model(tmp_path / "model.ubj")
    sample = frame.iloc[:4].copy()
    sample.iloc[0, 1] = np.nan  # absent from the request: a missing value for the trees
    expected = probabilities(booster.predict(xgb.DMatrix(sample)), [0, 1, 2])
    records = sample.to_dict(orient="records")
    del records[0]["income"]
    check_contract(
        Case(
            "xgboost", str(tmp_path / "model.ubj"), json.dumps(records).encode(), checker(expected)
        )
    )


def test_xgboost_sklearn_wrappers_saved_with_joblib(tmp_path: Path) -> None:
    frame, labels = data(classes=3)
    names = np.array(["low", "mid", "high"])[labels]
    from sklearn.preprocessing import LabelEncoder

    encoder = LabelEncoder().fit(names)
    classifier = xgb.XGBClassifier(n_estimators=15, max_depth=3).fit(
        frame, encoder.transform(names)
    )
    joblib.dump(classifier, tmp_path / "classifier.joblib")
    sample = frame.iloc[:3]
    expected = probabilities(classifier.predict_proba(sample), classifier.classes_)
    check_contract(
        Case("xgboost", str(tmp_path / "classifier.joblib"), rows(sample), checker(expected))
    )

    regressor = xgb.XGBRegressor(n_estimators=15).fit(frame, frame["age"] * 2 + 1)
    joblib.dump(regressor, tmp_path / "regressor.pkl")
    expected = [{"prediction": float(v)} for v in regressor.predict(sample)]
    check_contract(
        Case("xgboost", str(tmp_path / "regressor.pkl"), rows(sample), checker(expected))
    )


def test_lightgbm_native_text_binary_and_lists_of_values(tmp_path: Path) -> None:
    frame, labels = data()
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(frame, labels), 20
    )
    booster.save_model(tmp_path / "model.txt")
    sample = frame.iloc[:5]
    p1 = booster.predict(sample)
    expected = probabilities(np.stack([1 - p1, p1], axis=1), [0, 1])
    check_contract(Case("lightgbm", str(tmp_path / "model.txt"), rows(sample), checker(expected),
                        bad_requests=BAD))  # fmt: skip
    processor = load(Case("lightgbm", str(tmp_path / "model.txt"), b"", lambda _: None))
    body, status = call(processor, json.dumps(sample.to_numpy().tolist()).encode())
    assert status == 200
    checker(expected)(body)


def test_lightgbm_multiclass_and_sklearn_regressor(tmp_path: Path) -> None:
    frame, labels = data(classes=3)
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1},
        lgb.Dataset(frame, labels),
        10,
    )
    booster.save_model(tmp_path / "multi.txt")
    sample = frame.iloc[:4]
    expected = probabilities(booster.predict(sample), [0, 1, 2])
    check_contract(Case("lightgbm", str(tmp_path / "multi.txt"), rows(sample), checker(expected)))

    regressor = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(frame, frame["visits"] * 3)
    joblib.dump(regressor, tmp_path / "regressor.joblib")
    expected_r = [{"prediction": float(v)} for v in regressor.predict(sample)]
    check_contract(
        Case("lightgbm", str(tmp_path / "regressor.joblib"), rows(sample), checker(expected_r))
    )


def test_lightgbm_takes_the_dataframe_names_it_rewrote(tmp_path: Path) -> None:
    frame, labels = data()
    frame.columns = ["age (years)", "income", "visits per month", "score"]
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(frame, labels), 5)
    booster.save_model(tmp_path / "model.txt")
    assert "visits_per_month" in booster.feature_name()  # LightGBM's own spelling
    sample = frame.iloc[:3]
    p1 = booster.predict(sample)
    expected = probabilities(np.stack([1 - p1, p1], axis=1), [0, 1])
    check_contract(Case("lightgbm", str(tmp_path / "model.txt"), rows(sample), checker(expected)))


def test_a_null_input_is_a_missing_value(tmp_path: Path) -> None:
    frame, labels = data()
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(frame, labels), 5)
    booster.save_model(tmp_path / "model.txt")
    processor = load(Case("lightgbm", str(tmp_path / "model.txt"), b"", lambda _: None))
    body, status = call(processor, b'[{"age": null, "income": 1.0}]')
    assert status == 200
    p1 = booster.predict(np.array([[math.nan, 1.0, math.nan, math.nan]]))[0]
    checker([{"p_0": 1 - p1, "p_1": p1}])(body)


@pytest.mark.parametrize(
    ("code", "name", "content", "reason"),
    [
        ("xgboost", "model.json", b'{"learner": 1}', "is not an XGBoost model"),
        ("xgboost", "model.ubj", b"tree\nversion=v4\n", "is not an XGBoost model"),
        ("lightgbm", "model.txt", b'{"learner": {}}', "is not a LightGBM model"),
        ("lightgbm", "model.joblib", b"\x00garbage", "not a joblib or pickle file of a LightGBM"),
    ],
)
def test_a_model_of_the_wrong_kind_fails_to_load(
    tmp_path: Path, code: str, name: str, content: bytes, reason: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ProcessorLoadError, match=reason):
        load(Case(code, str(tmp_path / name), b"", lambda _: None))


def test_a_pickled_model_of_another_library_is_refused(tmp_path: Path) -> None:
    frame, labels = data()
    joblib.dump(lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(frame, labels),
                tmp_path / "lgbm.joblib")  # fmt: skip
    with pytest.raises(ProcessorLoadError, match=r"holds a lightgbm\.sklearn\.LGBMClassifier, not"):
        load(Case("xgboost", str(tmp_path / "lgbm.joblib"), b"", lambda _: None))
