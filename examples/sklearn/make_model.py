"""The built-in ``sklearn`` processor: a fitted scikit-learn estimator or pipeline, saved with
joblib (or pickle), served with no code of yours.

    python make_model.py [DIR]    # writes iris.joblib here (or into DIR)
    eascmd create service.json    # from this directory: model_path is relative to it
    curl http://127.0.0.1:8080/api/predict/iris_sklearn -H 'Authorization: <token>' \
         -d @request.json
    # → [{"p_setosa":0.97…,"p_versicolor":0.02…,"p_virginica":0.00…}]

Request: a JSON list of records keyed by the column names the model was fitted with (fit it
on a pandas DataFrame), or lists of values in training order. Answer: a classifier with
predict_proba gives each class's probability keyed ``p_<class>``; a regressor (or a
classifier without probabilities) gives ``{"prediction": …}``.

Loading a joblib/pickle file runs code stored in it: a model package is trusted code, just
as a Python processor is. Deploy only model files you would run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    iris = load_iris(as_frame=True)
    labels = iris.target.map(dict(enumerate(iris.target_names)))  # classes by name
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(iris.data, labels)
    path = out / "iris.joblib"
    joblib.dump(model, path)
    print(path)
