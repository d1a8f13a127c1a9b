"""Make the model of examples/onnx: y = relu(x @ W + b), x float [N, 4] → y float [N, 3],
written with the onnx helper API.

    pip install -e '.[onnx]'
    cd examples/onnx && python make_model.py            # writes ./model.onnx
    eascmd create service.json
    curl http://127.0.0.1:8080/api/predict/onnx_example -H 'Authorization: <token>' \\
         -H 'Content-Type: application/json' -d '{"inputs": {"x": [[1, 2, 3, 4]]}}'
    # → {"outputs": {"y": [[...]]}}; a tf_request.proto PredictRequest works too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 3)).astype(np.float32)
    bias = rng.normal(size=(3,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "example",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "model.onnx")
