"""Caffe: a deploy prototxt and its caffemodel, run by OpenCV's dnn module (SPEC §6).

``model_config`` names both files inside the model package:
``{"model": "deploy.prototxt", "weight": "x.caffemodel"}`` (paths relative to
``model_entry``, or to its directory when it is a file). The request is caffe.proto's
PredictRequest: ``input_name[i]`` names the blob ``input_data[i]`` feeds (one unnamed tensor
feeds the only input), each with its shape; ``output_filter`` names the layers whose outputs
are wanted (default: the net's final layers). Each input's shape must match the one the
prototxt declares (``input``/``input_shape``/``input_dim`` or an ``Input`` layer) except the
first dimension, the batch.

``caffe_gpu`` uses OpenCV's CUDA backend, which only a CUDA build of OpenCV has; the
``caffe`` extra installs opencv-python-headless, a CPU build, so there it refuses to load and
says so. One OpenCV net is not safe to run from two threads at once: calls take turns.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from google.protobuf import text_format

from processors.base import ProcessorLoadError, RequestContext
from processors.builtin.tensor import (
    OK,
    Answer,
    Array,
    BadRequest,
    Call,
    Outputs,
    TensorProcessor,
)
from processors.wire import caffe_net_pb2 as net_pb
from processors.wire import caffe_pb2 as pb


def read_config(model_config: str) -> tuple[str, str]:
    try:
        config = json.loads(model_config) if model_config.strip() else {}
    except ValueError as exc:
        raise ProcessorLoadError(f"model_config: not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ProcessorLoadError('model_config: must be {"model": ..., "weight": ...}')
    for key in ("model", "weight"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise ProcessorLoadError(
                f"model_config.{key}: required — the Caffe processor reads "
                '{"model": "deploy.prototxt", "weight": "x.caffemodel"}'
            )
    return config["model"], config["weight"]


def declared_inputs(prototxt: Path) -> dict[str, tuple[int, ...]]:
    """Input blob → declared shape, in order, from a deploy prototxt."""
    net = net_pb.NetParameter()
    try:
        # Only the input declarations matter here; OpenCV reads the rest.
        text_format.Parse(prototxt.read_text(), net, allow_unknown_field=True)
    except (text_format.ParseError, UnicodeDecodeError) as exc:
        raise ProcessorLoadError(
            f"model_config.model: {prototxt.name} is not a Caffe prototxt: {exc}"
        ) from None
    inputs: dict[str, tuple[int, ...]] = {}
    dims = list(net.input_dim)
    for index, name in enumerate(net.input):
        if index < len(net.input_shape):
            inputs[name] = tuple(net.input_shape[index].dim)
        elif len(dims) >= 4 * (index + 1):
            inputs[name] = tuple(dims[4 * index : 4 * index + 4])
    for layer in net.layer:
        if layer.type == "Input":
            for index, top in enumerate(layer.top):
                shapes = layer.input_param.shape
                shape = shapes[index] if index < len(shapes) else shapes[0] if shapes else None
                inputs[top] = tuple(shape.dim) if shape is not None else ()
    return inputs


def _inside(root: Path, relative: str, key: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ProcessorLoadError(f"model_config.{key}: {relative!r} points outside the model")
    if not path.is_file():
        raise ProcessorLoadError(f"model_config.{key}: {relative!r} is not in the model package")
    return path


class CaffeProcessor(TensorProcessor):
    uses_gpu = False

    def __init__(self) -> None:
        self.net: Any = None
        self.inputs: dict[str, tuple[int, ...]] = {}
        self.outputs: list[str] = []
        self.layers: set[str] = set()
        self._lock = threading.Lock()

    def load(self, model_entry: str, model_config: str) -> None:
        if self.uses_gpu and cv2.cuda.getCudaEnabledDeviceCount() == 0:
            raise ProcessorLoadError(
                "processor: caffe_gpu runs on OpenCV's CUDA backend, and this OpenCV has no "
                "CUDA device (opencv-python-headless is a CPU build; install a CUDA build of "
                "OpenCV, or use caffe_cpu)"
            )
        model, weight = read_config(model_config)
        if not model_entry:
            raise ProcessorLoadError("model_path: the Caffe processor needs a model package")
        entry = Path(model_entry)
        root = entry if entry.is_dir() else entry.parent
        prototxt, caffemodel = _inside(root, model, "model"), _inside(root, weight, "weight")
        self.inputs = declared_inputs(prototxt)
        if not self.inputs:
            raise ProcessorLoadError(
                f"model_config.model: {prototxt.name} declares no input (input/input_shape or "
                "an Input layer)"
            )
        try:
            net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        except cv2.error as exc:
            raise ProcessorLoadError(
                f"model_config.weight: OpenCV cannot read {prototxt.name} with "
                f"{caffemodel.name}: {_cv_message(exc)}"
            ) from None
        if net.empty():
            raise ProcessorLoadError(f"model_config.model: {prototxt.name} defines no layers")
        if self.uses_gpu:
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
        self.net = net
        self.outputs = list(net.getUnconnectedOutLayersNames())
        self.layers = set(net.getLayerNames())

    def parse(self, body: bytes, ctx: RequestContext) -> Call | Answer:
        request = pb.PredictRequest()
        request.ParseFromString(body)
        names = list(request.input_name)
        if not names and len(request.input_data) == 1 and len(self.inputs) == 1:
            names = list(self.inputs)
        if len(names) != len(request.input_data):
            raise BadRequest(
                f"input_name: {len(names)} names for {len(request.input_data)} input_data tensors"
            )
        given: dict[str, Array] = {}
        for name, proto in zip(names, request.input_data, strict=True):
            if name not in self.inputs:
                raise BadRequest(
                    f"input_name: unknown input {name!r} (the net takes {', '.join(self.inputs)})"
                )
            given[name] = self._array(name, proto)
        missing = [name for name in self.inputs if name not in given]
        if missing:
            raise BadRequest(
                f"input_name: missing input {missing[0]!r} (the net takes {', '.join(self.inputs)})"
            )
        wanted = list(dict.fromkeys(request.output_filter)) or self.outputs
        for name in wanted:
            if name not in self.layers:
                raise BadRequest(f"output_filter: the net has no layer {name!r}")
        layout = tuple(wanted)

        def answer(outputs: Outputs) -> Answer:
            response = pb.PredictResponse()
            for name in wanted:
                response.output_name.append(name)
                array = outputs[name]
                response.output_data.add(
                    shape=pb.ArrayShape(dim=array.shape), data=array.ravel().tolist()
                )
            return response.SerializeToString(deterministic=True), OK

        return Call(tuple(given[n] for n in self.inputs), answer, target=layout, group=layout)

    def _array(self, name: str, proto: Any) -> Array:
        shape = list(proto.shape.dim)
        declared = self.inputs[name]
        expected = int(np.prod(shape, dtype=np.int64)) if shape else 0
        if not shape or any(d <= 0 for d in shape) or len(proto.data) != expected:
            raise BadRequest(
                f"input {name!r}: shape {shape} needs {expected} values, data holds "
                f"{len(proto.data)}"
            )
        if declared and (len(shape) != len(declared) or tuple(shape[1:]) != declared[1:]):
            raise BadRequest(
                f"input {name!r}: shape {shape} does not match the net's {['batch', *declared[1:]]}"
            )
        return np.asarray(proto.data, dtype=np.float32).reshape(shape)

    def run(self, call: Call, inputs: tuple[Array, ...]) -> Outputs:
        wanted: tuple[str, ...] = call.target
        with self._lock:
            for name, array in zip(self.inputs, inputs, strict=True):
                self.net.setInput(array, name)
            try:
                results = self.net.forward(list(wanted))
            except cv2.error as exc:
                raise BadRequest(f"OpenCV refused the inputs: {_cv_message(exc)}") from None
            # OpenCV may reuse its output buffers on the next forward: copy before letting go.
            return {name: np.array(r, copy=True) for name, r in zip(wanted, results, strict=True)}


def _cv_message(exc: cv2.error) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    return text.splitlines()[-1] if text else type(exc).__name__


class CaffeGPUProcessor(CaffeProcessor):
    uses_gpu = True
