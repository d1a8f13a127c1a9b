"""The built-in ``parameter_sever`` processor (PAI-EAS's spelling; ``parameter_server`` works
too): sparse logistic regression for models of millions to billions of weights.

    python make_model.py [DIR]    # writes weights.txt, then the model directory lr_model/
    eascmd create service.json    # from this directory: model_path is relative to it
    curl http://127.0.0.1:8080/api/predict/ctr_lr -H 'Authorization: <token>' \
         -d '[{"1":1,"2":1},{"1":1,"3":1}]'
    # → [0.62…,0.41…]      sigmoid(bias + Σ weight[id]·value), one number per record

The model is a directory of two NumPy files, ``feature_ids.npy`` (sorted int64 ids; -1 is
the bias) and ``weights.npy``, memory-mapped by every worker thread and process of the
instance, so it takes its size in memory once. Make it from a text file of
``feature_id weight`` lines (``bias <value>`` for the bias) with:

    python -m processors.builtin.sparse_lr weights.txt lr_model/
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from processors.builtin.sparse_lr import convert

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    rng = np.random.default_rng(2)
    count = 1_000_000  # a million weights over ids 0…999,999
    text = out / "weights.txt"
    with text.open("w") as lines:
        lines.write("bias -0.2\n")
        weights = rng.normal(0, 0.3, count)
        lines.writelines(f"{i} {w:.6f}\n" for i, w in enumerate(weights.tolist()))
    print(f"{out / 'lr_model'}: {convert(text, out / 'lr_model')} weights")
