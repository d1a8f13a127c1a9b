"""Small real models made at test time with the real libraries, one builder per framework.

Each builder writes its model under the directory it is given and returns what a test needs
to call it and to compute the expected answer in-process with the library itself.
Frameworks are imported inside the builders, so a test module imports only its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SEED = 7


def keras_classifier(root: Path) -> tuple[Path, Any]:
    """A Keras model exported as a SavedModel with the signature ``predict_images``:
    ``images`` float32 [-1, 4] → ``scores`` float32 [-1, 3] (softmax) and ``top`` int64 [-1].

    Returns the SavedModel directory and the Keras model (for in-process predictions)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input((4,), name="images"),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="images")])
    def predict_images(images: Any) -> dict[str, Any]:
        scores = model(images)
        return {"scores": scores, "top": tf.argmax(scores, axis=1)}

    path = root / "saved_model"
    tf.saved_model.save(model, str(path), signatures={"predict_images": predict_images})
    return path, model


def tf_many_dtypes(root: Path) -> Path:
    """A tf.Module whose signatures take every dtype tf_request.proto carries.

    ``serving_default`` (the default) takes ``x`` float32 [-1, 2], ``d`` float64 [-1],
    ``i32`` int32 [-1], ``i16`` int16 [-1], ``i8`` int8 [-1], ``u8`` uint8 [-1], ``u16``
    uint16 [-1], ``i64`` int64 [-1], ``s`` string [-1], ``b`` bool [-1], ``h`` float16 [-1]
    and ``bf`` bfloat16 [-1]; each output is its input transformed in its own dtype.
    ``fixed`` takes ``x`` float32 [2, 2] (no free batch dimension) and answers ``y = x * 2``.
    """
    import tensorflow as tf

    class Many(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="x"),
                tf.TensorSpec([None], tf.float64, name="d"),
                tf.TensorSpec([None], tf.int32, name="i32"),
                tf.TensorSpec([None], tf.int16, name="i16"),
                tf.TensorSpec([None], tf.int8, name="i8"),
                tf.TensorSpec([None], tf.uint8, name="u8"),
                tf.TensorSpec([None], tf.uint16, name="u16"),
                tf.TensorSpec([None], tf.int64, name="i64"),
                tf.TensorSpec([None], tf.string, name="s"),
                tf.TensorSpec([None], tf.bool, name="b"),
                tf.TensorSpec([None], tf.float16, name="h"),
                tf.TensorSpec([None], tf.bfloat16, name="bf"),
            ]
        )
        def serve(
            self, x: Any, d: Any, i32: Any, i16: Any, i8: Any, u8: Any, u16: Any, i64: Any,
            s: Any, b: Any, h: Any, bf: Any,
        ) -> dict[str, Any]:  # fmt: skip
            return {
                "x_sum": tf.reduce_sum(x, axis=1),
                "d_half": d / 2,
                "i32_neg": -i32,
                "i16_twice": i16 * 2,
                "i8_neg": -i8,
                "u8_plus": u8 + 1,
                "u16_plus": u16 + 1,
                "i64_sq": i64 * i64,
                "s_upper": tf.strings.upper(s),
                "b_not": tf.logical_not(b),
                "h_twice": h * 2,
                "bf_twice": bf * 2,
            }

        @tf.function(input_signature=[tf.TensorSpec([2, 2], tf.float32, name="x")])
        def fixed(self, x: Any) -> dict[str, Any]:
            return {"y": x * 2}

    module = Many()
    path = root / "many_dtypes"
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve, "fixed": module.fixed}
    )
    return path


def many_dtype_feed(rows: int = 2) -> dict[str, np.ndarray[Any, Any]]:
    """Inputs for :func:`tf_many_dtypes`' default signature, ``rows`` of each."""
    import ml_dtypes

    r = np.arange(rows)
    return {
        "x": np.stack([r + 0.5, r - 1.25]).T.astype(np.float32),
        "d": (r + 0.1).astype(np.float64),
        "i32": (r - 5).astype(np.int32),
        "i16": (r + 300).astype(np.int16),
        "i8": (r - 100).astype(np.int8),
        "u8": (r + 200).astype(np.uint8),
        "u16": (r + 60000).astype(np.uint16),
        "i64": (r + 3_000_000_000).astype(np.int64),
        "s": np.array([f"row-{i}".encode() for i in r], dtype=object),
        "b": r % 2 == 0,
        "h": (r + 0.5).astype(np.float16),
        "bf": (r + 1.5).astype(ml_dtypes.bfloat16),
    }


def torch_modules(root: Path) -> dict[str, Path]:
    """TorchScript files: ``mlp`` (scripted, x float32 [-1, 4] → a tensor [-1, 3]),
    ``multi`` (scripted, ``forward(x, ids)`` → a tuple (x @ W + bias-by-id, ids * 2)),
    ``named`` (traced, ``forward(a, b)`` → a dict {"sum", "prod"}), ``dict_in``
    (scripted, ``forward(features: Dict[str, Tensor])`` → a tensor)."""
    import torch

    torch.manual_seed(SEED)

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = torch.nn.Linear(4, 8)
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=1)

    class Multi(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)
            self.bias = torch.nn.Embedding(10, 2)

        def forward(self, x: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.linear(x) + self.bias(ids), ids * 2

    class Named(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"sum": a + b, "prod": a * b}

    class DictIn(torch.nn.Module):
        def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
            return features["price"] * features["count"].to(torch.float32)

    paths = {name: root / f"{name}.pt" for name in ("mlp", "multi", "named", "dict_in")}
    torch.jit.script(MLP().eval()).save(str(paths["mlp"]))
    torch.jit.script(Multi().eval()).save(str(paths["multi"]))
    example = (torch.ones(2, 3), torch.ones(2, 3))
    torch.jit.trace(Named(), example, strict=False).save(str(paths["named"]))
    torch.jit.script(DictIn()).save(str(paths["dict_in"]))
    return paths


def onnx_mlp(root: Path) -> tuple[Path, dict[str, np.ndarray[Any, Any]]]:
    """An ONNX graph made with onnx.helper: ``x`` float [N, 4] → ``y = relu(x @ W + b)``
    float [N, 3] and ``label = argmax(y)`` int64 [N]. Returns the file and its weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)
    weights = {
        "W": rng.normal(size=(4, 3)).astype(np.float32),
        "b": rng.normal(size=(3,)).astype(np.float32),
    }
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
            helper.make_node("ArgMax", ["y"], ["label"], axis=1, keepdims=0),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = root / "mlp.onnx"
    onnx.save(model, str(path))
    return path, weights


def caffe_net(root: Path) -> tuple[Path, dict[str, np.ndarray[Any, Any]]]:
    """A tiny Caffe net: deploy.prototxt (Input ``data`` [1, 4] → InnerProduct ``ip1`` (5)
    → ReLU → InnerProduct ``ip2`` (3) → Softmax ``prob``) and net.caffemodel written with
    protobuf from our NetParameter definition, with known weights. Returns the directory
    and the weights (Caffe's InnerProduct stores W as [num_output, inputs])."""
    from processors.wire import caffe_net_pb2 as caffe

    rng = np.random.default_rng(SEED)
    weights = {
        "ip1_w": rng.normal(size=(5, 4)).astype(np.float32),
        "ip1_b": rng.normal(size=(5,)).astype(np.float32),
        "ip2_w": rng.normal(size=(3, 5)).astype(np.float32),
        "ip2_b": rng.normal(size=(3,)).astype(np.float32),
    }
    deploy = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 5 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
"""
    net = caffe.NetParameter(name="tiny")
    for name, bottom, outputs in (("ip1", "data", 5), ("ip2", "ip1", 3)):
        layer = net.layer.add(name=name, type="InnerProduct", bottom=[bottom], top=[name])
        layer.inner_product_param.num_output = outputs
        for key in (f"{name}_w", f"{name}_b"):
            blob = layer.blobs.add()
            blob.shape.dim.extend(weights[key].shape)
            blob.data.extend(weights[key].ravel().tolist())
    directory = root / "caffe"
    directory.mkdir()
    (directory / "deploy.prototxt").write_text(deploy)
    (directory / "net.caffemodel").write_bytes(net.SerializeToString())
    return directory, weights


def caffe_expected(x: np.ndarray[Any, Any], w: dict[str, np.ndarray[Any, Any]]) -> Any:
    hidden = np.maximum(x @ w["ip1_w"].T + w["ip1_b"], 0)
    logits = hidden @ w["ip2_w"].T + w["ip2_b"]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)
