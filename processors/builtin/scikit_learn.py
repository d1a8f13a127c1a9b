"""The ``sklearn`` processor: a fitted scikit-learn estimator (or pipeline) saved with joblib
or pickle.

Loading a pickle runs code from the model file: a model package is trusted code, exactly
as a Python processor is. Deploy only model files you would run.

Request: a JSON list of records keyed by the names the model was fitted with
(``feature_names_in_``, present when it was fitted on a pandas DataFrame), or a list of value
lists in training order, ``[[5.1, 3.5, 1.4, 0.2]]``. Every input must be given (null passes
as a missing value, for estimators that accept NaN); an unknown name is refused, so a typo is
an error rather than a silent zero. Text values reach the model as they are (for encoders of
categorical columns).

Answer, one object per record: a classifier with ``predict_proba`` answers each class's
probability keyed ``p_<class label>`` — ``{"p_0": 0.93, "p_1": 0.07}``,
``{"p_setosa": 0.98, …}``; any other estimator (regressors, classifiers without
probabilities) answers ``{"prediction": …}``. The records of a batch are scored in one call
(``process_batch``). The Open Inference Protocol maps as ``processors.builtin.tabular`` says
(platform ``sklearn``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from processors.base import ProcessorLoadError
from processors.builtin.tabular import InputError, RecordsProcessor, class_key, find_model_file
from processors.wire import v2

SUFFIXES = (".joblib", ".pkl", ".pickle")


class SklearnProcessor(RecordsProcessor):
    platform = "sklearn"

    def load(self, model_entry: str, model_config: str) -> None:
        path = find_model_file(model_entry, SUFFIXES, "scikit-learn")
        try:
            import joblib
            import numpy as np
            from sklearn.base import is_classifier, is_regressor
            from sklearn.exceptions import NotFittedError
            from sklearn.utils.validation import check_is_fitted
        except ImportError as exc:
            raise ProcessorLoadError(
                f"the sklearn processor needs scikit-learn ({exc}): pip install 'openeas[sklearn]'"
            ) from None
        self._np = np
        try:
            model = joblib.load(path)
        except Exception as exc:
            raise ProcessorLoadError(
                f"{path.name} is not a joblib or pickle file of a scikit-learn estimator: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if not callable(getattr(model, "predict", None)):
            raise ProcessorLoadError(
                f"{path.name} holds a {type(model).__module__}.{type(model).__name__}, "
                f"not a fitted scikit-learn estimator (it has no predict method)"
            )
        try:
            check_is_fitted(model)
        except (NotFittedError, TypeError) as exc:
            raise ProcessorLoadError(f"{path.name}: {exc}") from None
        self.model = model
        names = getattr(model, "feature_names_in_", None)
        self.features: list[str] | None = [str(n) for n in names] if names is not None else None
        self.width: int | None = getattr(model, "n_features_in_", None)
        self.probabilities = is_classifier(model) and hasattr(model, "predict_proba")
        self.kind = (
            "classifier"
            if is_classifier(model)
            else "regressor"
            if is_regressor(model)
            else "other"
        )
        self.keys = [class_key(c) for c in model.classes_] if self.probabilities else []

    def row(self, record: dict[str, Any] | list[Any], index: int) -> list[Any]:
        if isinstance(record, dict):
            if self.features is None:
                raise InputError(
                    f"record {index}: this model was fitted without input names; send each "
                    f"record as a list of its {self.width or 'input'} values in training order"
                )
            unknown = sorted(set(record) - set(self.features))
            if unknown:
                raise InputError(
                    f"record {index}: unknown field(s) {', '.join(unknown)}; the model's inputs "
                    f"are {', '.join(self.features)}"
                )
            missing = [f for f in self.features if f not in record]
            if missing:
                raise InputError(f"record {index}: missing field(s) {', '.join(missing)}")
            values = [record[f] for f in self.features]
            names = self.features
        else:
            if self.width is not None and len(record) != self.width:
                raise InputError(
                    f"record {index}: the model takes {self.width} values, got {len(record)}"
                )
            values = record
            names = [f"#{i}" for i in range(len(record))]
        for name, value in zip(names, values, strict=True):
            if isinstance(value, list | dict):
                raise InputError(
                    f"record {index}: field {name!r}: expected a number or a string, "
                    f"got {json.dumps(value)[:40]}"
                )
        return [math.nan if v is None else v for v in values]

    def score(self, rows: list[Any]) -> list[Any]:
        inputs = self._inputs(rows)
        try:
            if self.probabilities:
                return [
                    dict(zip(self.keys, map(float, p), strict=True))
                    for p in self.model.predict_proba(inputs)
                ]
            return [{"prediction": _plain(v)} for v in self.model.predict(inputs)]
        except (ValueError, TypeError) as exc:
            raise InputError(f"the model refused the input: {exc}{self._text_hint(rows)}") from None

    def _inputs(self, rows: list[Any]) -> Any:
        np = self._np
        if self.features is not None:
            import pandas as pd

            return pd.DataFrame.from_records(rows, columns=self.features)
        try:
            return np.asarray(rows, dtype=np.float64)
        except (ValueError, TypeError):
            return np.asarray(rows, dtype=object)

    def _text_hint(self, rows: list[Any]) -> str:
        """Name the fields that hold text, the usual reason a numeric model refuses input."""
        names = self.features or [f"#{i}" for i in range(len(rows[0]))]
        found = []
        for index, row in enumerate(rows):
            for name, value in zip(names, row, strict=False):
                if isinstance(value, str) and not _is_number(value):
                    found.append(f"record {index} field {name!r} = {json.dumps(value)[:30]}")
        return f" (text values: {'; '.join(found[:5])})" if found else ""

    def row_width(self) -> int | None:
        return len(self.features) if self.features is not None else self.width

    def prediction_datatype(self) -> str:
        if self.kind == "classifier" and hasattr(self.model, "classes_"):
            return v2.datatype_of(self._np.asarray(self.model.classes_).dtype, "predict")
        return "FP64"

    def describe(self) -> dict[str, Any]:
        return {
            "estimator": type(self.model).__name__,
            "kind": self.kind,
            "inputs": self.features or self.width,
            "outputs": self.keys or ["prediction"],
        }


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value
