"""The built-in ``pmml`` processor: a PMML model served with no code of yours.

    python -m examples.pmml.make_model   # from the repository root (it reuses the heart-disease
                                         # training); writes examples/pmml/heart_disease.pmml
    cd examples/pmml && eascmd create service.json   # model_path is relative to this directory
    curl http://127.0.0.1:8080/api/predict/heart_disease_pmml -H 'Authorization: <token>' \
         -d @request.json
    # → [{"p_0":0.99…,"p_1":0.00…}]    one object of output fields per record

Any PMML file works (exported from scikit-learn, Spark, R, KNIME, Alink, …). The request is a
JSON list of records keyed by the model's DataDictionary fields; a field left out is filled
with false / 0.0 / 0 / "" by its type unless the model says how to treat a missing value.
``GET`` on the service lists the inputs and outputs. This model is the heart-disease
pipeline's (examples/heart_disease): a scikit-learn pipeline exported by sklearn2pmml.
"""

from __future__ import annotations

import sys
from pathlib import Path

from examples.heart_disease.data import generate
from examples.heart_disease.train import fit, save

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    matrix, labels = generate()
    print(save(fit(matrix, labels), out / "heart_disease.pmml"))
