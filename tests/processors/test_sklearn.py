"""The ``sklearn`` processor on estimators fitted at test time, answers compared with the
estimator's own ``predict_proba`` / ``predict``."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from processors.base import ProcessorLoadError
from tests.processors.contract import Case, call, check_contract, load
from tests.processors.tabular_models import checker, probabilities, records

pytest.importorskip("sklearn", reason="the sklearn extra is not installed")

import joblib
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """A pipeline fitted on a DataFrame whose classes are names (setosa, …)."""
    data = load_iris(as_frame=True)
    labels = data.target.map(dict(enumerate(data.target_names)))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(data.data, labels)
    path = tmp_path_factory.mktemp("iris") / "iris.joblib"
    joblib.dump(model, path)
    return path, model, data.data.iloc[::30]


def test_classifier_fitted_on_a_dataframe_passes_the_contract(iris: tuple[Path, Any, Any]) -> None:
    path, model, sample = iris
    rows = records(sample)
    expected = probabilities(model.predict_proba(sample), model.classes_)
    assert set(expected[0]) == {"p_setosa", "p_versicolor", "p_virginica"}
    first = rows[0]
    check_contract(
        Case(
            code="sklearn",
            model_entry=str(path),
            request=json.dumps(rows).encode(),
            check=checker(expected),
            bad_requests=[
                (b"{not json", "the body must be JSON"),
                (json.dumps([{k: v for k, v in first.items() if k != "petal width (cm)"}]).encode(),
                 "missing field(s) petal width (cm)"),
                (json.dumps([{**first, "petal lenght": 1}]).encode(),
                 "unknown field(s) petal lenght"),
                (json.dumps([{**first, "sepal length (cm)": "long"}]).encode(),
                 "field 'sepal length (cm)' = \\\"long\\\""),
                (json.dumps([{**first, "sepal width (cm)": [3]}]).encode(), "'sepal width (cm)'"),
                (b"[[1, 2, 3]]", "the model takes 4 values, got 3"),
            ],
        )
    )  # fmt: skip


def test_lists_of_values_are_taken_in_training_order(iris: tuple[Path, Any, Any]) -> None:
    path, model, sample = iris
    expected = probabilities(model.predict_proba(sample), model.classes_)
    processor = load(Case("sklearn", str(path), b"", lambda _: None))
    body, status = call(processor, json.dumps(sample.to_numpy().tolist()).encode())
    assert status == 200, body
    checker(expected)(body)


def test_regressor_answers_prediction(tmp_path: Path) -> None:
    data = load_diabetes(as_frame=True)
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(data.data, data.target)
    path = tmp_path / "diabetes.pkl"
    path.write_bytes(pickle.dumps(model))
    sample = data.data.iloc[:5]
    expected = [{"prediction": float(v)} for v in model.predict(sample)]
    check_contract(
        Case("sklearn", str(path), json.dumps(records(sample)).encode(), checker(expected))
    )


def test_text_columns_reach_a_pipeline_that_encodes_them(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {"city": ["paris", "rome", "oslo", "rome"] * 10, "size": [1.0, 2.0, 3.0, 4.5] * 10}
    )
    target = [0, 1, 0, 1] * 10
    model = make_pipeline(
        ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, target)
    joblib.dump(model, tmp_path / "cities.joblib")
    sample = frame.iloc[:3]
    check_contract(
        Case(
            "sklearn",
            str(tmp_path),  # the package directory: its one .joblib file is the model
            json.dumps(records(sample)).encode(),
            checker(probabilities(model.predict_proba(sample), [0, 1])),
            bad_requests=[(b'[{"city": "lima", "size": 1}]', "the model refused the input")],
        )
    )


def test_a_classifier_without_probabilities_answers_the_class(tmp_path: Path) -> None:
    data = load_iris()
    model = LinearSVC().fit(data.data, data.target)  # fitted on a bare array: no names
    joblib.dump(model, tmp_path / "svc.joblib")
    sample = data.data[::50]
    check_contract(
        Case(
            "sklearn",
            str(tmp_path / "svc.joblib"),
            json.dumps(sample.tolist()).encode(),
            checker([{"prediction": int(v)} for v in model.predict(sample)]),
            bad_requests=[(b'[{"a": 1}]', "fitted without input names")],
        )
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<PMML/>", "not a joblib or pickle file of a scikit-learn estimator"),
        (pickle.dumps({"weights": [1, 2]}), "holds a builtins.dict, not a fitted scikit-learn"),
        (pickle.dumps(LogisticRegression()), "is not fitted yet"),
    ],
)
def test_a_file_that_is_no_fitted_estimator_fails_to_load(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    with pytest.raises(ProcessorLoadError, match=reason):
        load(Case("sklearn", str(path), b"", lambda _: None))


def test_an_empty_package_names_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no model here")
    with pytest.raises(ProcessorLoadError, match=r"no scikit-learn file \(\*\.joblib, \*\.pkl"):
        load(Case("sklearn", str(tmp_path), b"", lambda _: None))
