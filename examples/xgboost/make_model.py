"""The built-in ``xgboost`` processor: an XGBoost booster saved in its own format (``.json``
or ``.ubj`` from ``save_model``), or an ``XGBClassifier``/``XGBRegressor`` saved with joblib.

    python make_model.py [DIR]    # writes churn.json here (or into DIR)
    eascmd create service.json    # from this directory: model_path is relative to it
    curl http://127.0.0.1:8080/api/predict/churn_xgboost -H 'Authorization: <token>' \
         -d @request.json
    # → [{"p_0":0.93…,"p_1":0.06…}]

Request: records keyed by the booster's feature names (from the DataFrame it was trained
on) or lists of values in training order; numbers only, and a field left out is a missing
value the trees route as they learned. Answer: ``binary:logistic`` and ``multi:softprob``
give class probabilities ``p_<class>``; other objectives give ``{"prediction": …}``.
A joblib/pickle file runs code when loaded: deploy only files you trust.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 72, 2000),
            "monthly_spend": rng.gamma(2.0, 30.0, 2000),
            "support_calls": rng.poisson(1.5, 2000),
        }
    )
    risk = (
        -1.5 - 0.04 * frame.tenure_months + 0.01 * frame.monthly_spend + 0.6 * frame.support_calls
    )
    churned = rng.random(2000) < 1 / (1 + np.exp(-risk))
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(frame, churned), 50
    )
    path = out / "churn.json"
    booster.save_model(path)
    print(path)
