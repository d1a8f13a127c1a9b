"""The built-in ``lightgbm`` processor: a LightGBM booster saved as text (``save_model``), or
an ``LGBMClassifier``/``LGBMRegressor`` saved with joblib.

    python make_model.py [DIR]    # writes house_prices.txt here (or into DIR)
    eascmd create service.json    # from this directory: model_path is relative to it
    curl http://127.0.0.1:8080/api/predict/house_prices_lightgbm -H 'Authorization: <token>' \
         -d @request.json
    # → [{"prediction":312000.5…},{"prediction":98000.2…}]

Request: records keyed by the booster's feature names or lists of values in training order;
numbers only, a field left out is a missing value. Answer: ``binary`` / ``multiclass`` give
class probabilities ``p_<class>``; every other objective (this regression) gives
``{"prediction": …}``. A joblib/pickle file runs code when loaded: deploy only files you trust.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "area_m2": rng.uniform(30, 250, 3000),
            "rooms": rng.integers(1, 7, 3000),
            "age_years": rng.uniform(0, 80, 3000),
        }
    )
    price = 1500 * frame.area_m2 + 8000 * frame.rooms - 900 * frame.age_years
    price += rng.normal(0, 15000, 3000)
    booster = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(frame, price), 100)
    path = out / "house_prices.txt"
    booster.save_model(path)
    print(path)
