"""The ``xgboost`` and ``lightgbm`` processors: gradient-boosted trees.

Model files: the booster's own format — XGBoost ``.json`` or ``.ubj`` (``save_model``),
LightGBM ``.txt`` (``save_model``) — or the scikit-learn wrappers (``XGBClassifier``,
``LGBMRegressor``, …) saved with joblib/pickle (``.joblib``, ``.pkl``). Loading a pickle
runs code from the model file: a model package is trusted code, as a Python processor is.

Request: a JSON list of records keyed by the booster's feature names, or lists of values in
training order. Inputs are numbers (booleans count as 0/1). A field that is absent or null is
a missing value, which trees route by the branch they learned for it — both libraries are
built for that; a name the model does not know is refused, so a typo is an error.

Answer, one object per record: a classifier (objectives ``binary:logistic``,
``multi:softprob`` / ``binary``, ``multiclass``, ``multiclassova``) answers each class's
probability keyed ``p_<class label>`` (labels 0…K-1 for a bare booster, the wrapper's
``classes_`` otherwise); every other objective answers ``{"prediction": …}``. Each
prediction uses one thread (parallelism comes from the instance's worker threads); a batch
is scored in one call, and each record's answer does not depend on the others. The Open
Inference Protocol maps as ``processors.builtin.tabular`` says (platforms ``xgboost``,
``lightgbm``).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from processors.base import ProcessorLoadError
from processors.builtin.tabular import (
    InputError,
    RecordsProcessor,
    class_key,
    find_model_file,
    number,
    plain,
)

PICKLES = (".joblib", ".pkl", ".pickle")


def _load_pickle(path: Path, what: str) -> Any:
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise ProcessorLoadError(
            f"{path.name} is not a joblib or pickle file of a {what} model: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def _first_line(exc: BaseException) -> str:
    """Native errors carry a timestamp, a source location and a stack trace: keep the gist."""
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return line.split(": ", 1)[1] if line.startswith("[") and ": " in line else line


class BoosterProcessor(RecordsProcessor):
    """Records → a float matrix → the booster; subclasses load and predict."""

    features: list[str]
    keys: list[str]  # class keys for classifiers, [] for everything else
    objective: str

    def _setup(self, features: list[str], labels: list[Any] | None) -> None:
        self.features = features
        self.index = {name: i for i, name in enumerate(features)}
        self.keys = [class_key(c) for c in labels] if labels is not None else []

    def row(self, record: dict[str, Any] | list[Any], index: int) -> list[float]:
        width = len(self.features)
        if isinstance(record, list):
            if len(record) != width:
                raise InputError(
                    f"record {index}: the model takes {width} values, got {len(record)}"
                )
            return [
                number(v, f"record {index}: value {i}", missing=math.nan)
                for i, v in enumerate(record)
            ]
        positions = {
            name: self.index.get(name, self.index.get(self.stored_name(name))) for name in record
        }
        unknown = sorted(name for name, position in positions.items() if position is None)
        if unknown:
            raise InputError(
                f"record {index}: unknown field(s) {', '.join(unknown)}; the model's inputs are "
                f"{', '.join(self.features[:20])}{' …' if width > 20 else ''}"
            )
        values = [math.nan] * width
        for name, value in record.items():
            values[positions[name]] = number(  # type: ignore[index]
                value, f"record {index}: field {name!r}", missing=math.nan
            )
        return values

    def row_width(self) -> int | None:
        return len(self.features)

    def stored_name(self, name: str) -> str:
        """The name under which the library stored an input called ``name``."""
        return name

    def score(self, rows: list[Any]) -> list[Any]:
        import numpy as np

        predictions = self.predict(np.asarray(rows, dtype=np.float64))
        if not self.keys:
            return [{"prediction": plain(p)} for p in predictions]
        if predictions.ndim == 1:  # binary: the probability of the second class
            predictions = np.stack([1.0 - predictions.astype(np.float64), predictions], axis=1)
        return [dict(zip(self.keys, map(float, p), strict=True)) for p in predictions]

    def predict(self, matrix: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "inputs": self.features,
            "outputs": self.keys or ["prediction"],
        }


class XGBoostProcessor(BoosterProcessor):
    platform = "xgboost"
    SUFFIXES = (".json", ".ubj", ".model", ".bin", *PICKLES)
    iterations: tuple[int, int] = (0, 0)  # (0, 0): every tree

    def load(self, model_entry: str, model_config: str) -> None:
        path = find_model_file(model_entry, self.SUFFIXES, "XGBoost")
        try:
            import xgboost as xgb
        except ImportError as exc:
            raise ProcessorLoadError(
                f"the xgboost processor needs xgboost ({exc}): pip install 'openeas[xgboost]'"
            ) from None
        labels: list[Any] | None = None
        if path.suffix.lower() in PICKLES:
            model = _load_pickle(path, "XGBoost")
            if isinstance(model, xgb.XGBModel):
                booster = model.get_booster()
                # The wrapper predicts with the trees up to its best iteration (early stopping).
                best = getattr(booster, "best_iteration", None)
                if best is not None:
                    self.iterations = (0, int(best) + 1)
                if isinstance(model, xgb.XGBClassifier):
                    labels = list(model.classes_)
            elif isinstance(model, xgb.Booster):
                booster = model
            else:
                raise ProcessorLoadError(
                    f"{path.name} holds a {type(model).__module__}.{type(model).__name__}, "
                    f"not an XGBoost model"
                )
        else:
            booster = xgb.Booster()
            try:
                booster.load_model(str(path))
            except xgb.core.XGBoostError as exc:
                raise ProcessorLoadError(
                    f"{path.name} is not an XGBoost model (JSON or UBJSON from save_model): "
                    f"{_first_line(exc)}"
                ) from None
        booster.set_param({"nthread": 1})
        learner = json.loads(booster.save_config())["learner"]
        self.objective = learner["objective"]["name"]
        classes = int(learner["learner_model_param"].get("num_class", "0") or 0)
        if labels is None and self.objective == "binary:logistic":
            labels = [0, 1]
        elif labels is None and self.objective == "multi:softprob":
            labels = list(range(classes))
        elif self.objective not in ("binary:logistic", "multi:softprob"):
            labels = None  # margins, class indexes (softmax) and regressions are predictions
        names = booster.feature_names or [f"f{i}" for i in range(booster.num_features())]
        self.booster = booster
        self._setup(list(names), labels)

    def predict(self, matrix: Any) -> Any:
        # inplace_predict is thread-safe and builds no DMatrix per request.
        return self.booster.inplace_predict(
            matrix, iteration_range=self.iterations, validate_features=False
        )


class LightGBMProcessor(BoosterProcessor):
    platform = "lightgbm"
    SUFFIXES = (".txt", ".model", ".lgb", *PICKLES)
    CLASSIFIERS = ("binary", "multiclass", "softmax", "multiclassova", "multiclass_ova", "ova")

    def load(self, model_entry: str, model_config: str) -> None:
        path = find_model_file(model_entry, self.SUFFIXES, "LightGBM")
        try:
            import lightgbm as lgb
        except ImportError as exc:
            raise ProcessorLoadError(
                f"the lightgbm processor needs lightgbm ({exc}): pip install 'openeas[lightgbm]'"
            ) from None
        labels: list[Any] | None = None
        if path.suffix.lower() in PICKLES:
            model = _load_pickle(path, "LightGBM")
            if isinstance(model, lgb.LGBMModel):
                booster = model.booster_
                if isinstance(model, lgb.LGBMClassifier):
                    labels = list(model.classes_)
            elif isinstance(model, lgb.Booster):
                booster = model
            else:
                raise ProcessorLoadError(
                    f"{path.name} holds a {type(model).__module__}.{type(model).__name__}, "
                    f"not a LightGBM model"
                )
        else:
            try:
                booster = lgb.Booster(model_file=str(path))
            except lgb.basic.LightGBMError as exc:
                raise ProcessorLoadError(
                    f"{path.name} is not a LightGBM model (text from save_model): "
                    f"{_first_line(exc)}"
                ) from None
        self.objective = str(booster.params.get("objective", "regression")).split()[0]
        if self.objective in self.CLASSIFIERS:
            if labels is None:
                classes = booster.num_model_per_iteration()
                labels = [0, 1] if self.objective == "binary" else list(range(classes))
        else:
            labels = None
        self.booster = booster
        self._setup(list(booster.feature_name()), labels)

    def row_width(self) -> int | None:
        return len(self.features)

    def stored_name(self, name: str) -> str:
        # LightGBM stores "petal length (cm)" as "petal_length_(cm)": callers keep the names
        # of the DataFrame they trained on.
        return re.sub(r"\s", "_", name)

    def predict(self, matrix: Any) -> Any:
        return self.booster.predict(matrix, num_threads=1)
