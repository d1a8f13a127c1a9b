"""TensorFlow: a SavedModel served with tf_request.proto (SPEC §6).

Every ``tensorflow_cpu_*`` / ``tensorflow_gpu_*`` code is served by the TensorFlow 2.x this
installation has: it loads the SavedModels that 1.x wrote (``tf.saved_model.load``) and runs
their signatures eagerly. ``model_entry`` is the SavedModel directory (the one holding
``saved_model.pb``) or a TensorFlow Serving base directory of numbered versions, of which the
highest is served. SessionBundle exports (TensorFlow < 1.0) and custom ops are not supported.

A request names a signature (empty: the model's only one, or ``serving_default``), feeds
every input of it by name with the input's exact dtype and a shape the signature accepts,
and may name the outputs it wants (``output_filter``). ``GET`` answers the signature as JSON
(``?signature_name=NAME`` for another one). The CPU codes hide any GPU from TensorFlow; the
GPU codes refuse to load where TensorFlow sees none. The Open Inference Protocol
(``/v2/models/{service}/infer``, platform ``tensorflow_savedmodel``) feeds the same inputs by
name; its request ``parameters`` may name the signature (``signature_name``), and the
metadata describes the default signature.
"""

from __future__ import annotations

import os

# TensorFlow's C++ start-up chatter (CPU features, oneDNN notes) is not news in an instance log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import tensorflow as tf

from processors.base import ProcessorLoadError, RequestContext
from processors.builtin.signature import Signature, TensorSpec
from processors.builtin.tensor import (
    OK,
    Answer,
    Array,
    BadRequest,
    Binding,
    Call,
    Given,
    Outputs,
    TensorProcessor,
)
from processors.wire import tensors, v2
from processors.wire import tf_request_pb2 as pb

DEFAULT_SIGNATURE = "serving_default"

# TensorFlow dtype names → wire codes. Others (complex, uint32/64, resource, variant) cannot
# travel in tf_request.proto.
_WIRE: dict[str, int] = {
    "float32": tensors.DT_FLOAT,
    "float64": tensors.DT_DOUBLE,
    "float16": tensors.DT_HALF,
    "bfloat16": tensors.DT_BFLOAT16,
    "int32": tensors.DT_INT32,
    "int16": tensors.DT_INT16,
    "int8": tensors.DT_INT8,
    "uint8": tensors.DT_UINT8,
    "uint16": tensors.DT_UINT16,
    "int64": tensors.DT_INT64,
    "bool": tensors.DT_BOOL,
    "string": tensors.DT_STRING,
    "qint8": tensors.DT_QINT8,
    "quint8": tensors.DT_QUINT8,
    "qint16": tensors.DT_QINT16,
    "quint16": tensors.DT_QUINT16,
    "qint32": tensors.DT_QINT32,
}
_TF_NAME = {code: name for name, code in _WIRE.items()}


def _spec(name: str, spec: Any) -> TensorSpec:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorSpec(name, shape, _WIRE.get(spec.dtype.name, tensors.DT_INVALID))


def find_saved_model(model_entry: str) -> Path:
    """The directory holding saved_model.pb: the entry itself, its parent, or the highest
    numbered version below it (TensorFlow Serving's layout)."""
    if not model_entry:
        raise ProcessorLoadError(
            "model_path: the TensorFlow processor needs a SavedModel directory, none was given"
        )
    entry = Path(model_entry)
    if entry.is_file():
        if entry.name in ("saved_model.pb", "saved_model.pbtxt"):
            return entry.parent
        raise ProcessorLoadError(
            f"model_path: {entry.name} is not a TensorFlow SavedModel (a directory holding "
            "saved_model.pb and variables/)"
        )
    if any((entry / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
        return entry
    versions = sorted(
        (int(d.name), d)
        for d in entry.iterdir()
        if d.is_dir() and d.name.isdigit() and (d / "saved_model.pb").is_file()
    )
    if versions:
        return versions[-1][1]
    raise ProcessorLoadError(
        f"model_path: {entry.name} holds no saved_model.pb — not a TensorFlow SavedModel "
        "(SessionBundle exports of TensorFlow < 1.0 are not supported)"
    )


class TensorFlowProcessor(TensorProcessor):
    uses_gpu = False
    platform = "tensorflow_savedmodel"

    def __init__(self) -> None:
        self.functions: dict[str, Any] = {}
        self.signatures: dict[str, Signature] = {}
        self.default: str | None = None
        self._loaded: Any = None  # keeps the model's variables alive

    def load(self, model_entry: str, model_config: str) -> None:
        self._place()
        path = find_saved_model(model_entry)
        try:
            self._loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ProcessorLoadError(
                f"model_path: TensorFlow cannot load the SavedModel in {path.name}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            ) from exc
        for name, function in self._loaded.signatures.items():
            _, inputs = function.structured_input_signature
            outputs = function.structured_outputs
            if not isinstance(outputs, dict):
                outputs = {"output_0": outputs}
            self.functions[name] = function
            self.signatures[name] = Signature(
                name,
                tuple(_spec(key, spec) for key, spec in sorted(inputs.items())),
                tuple(_spec(key, spec) for key, spec in sorted(outputs.items())),
            )
        if not self.signatures:
            raise ProcessorLoadError(
                f"model_path: the SavedModel in {path.name} has no serving signature "
                "(save it with signatures=... or model.export())"
            )
        if DEFAULT_SIGNATURE in self.signatures:
            self.default = DEFAULT_SIGNATURE
        elif len(self.signatures) == 1:
            self.default = next(iter(self.signatures))

    def _place(self) -> None:
        gpus = tf.config.list_physical_devices("GPU")
        if self.uses_gpu and not gpus:
            raise ProcessorLoadError(
                "processor: a tensorflow_gpu code needs a GPU, and TensorFlow sees none "
                "(is CUDA_VISIBLE_DEVICES set, and is a CUDA build of TensorFlow installed?)"
            )
        if not self.uses_gpu and gpus:
            tf.config.set_visible_devices([], "GPU")

    def signature(self, name: str) -> Signature:
        if not name:
            if self.default is None:
                raise BadRequest(
                    "signature_name: the model has several signatures, name one of "
                    f"{', '.join(sorted(self.signatures))}"
                )
            name = self.default
        try:
            return self.signatures[name]
        except KeyError:
            raise BadRequest(
                f"signature_name: the model has no signature {name!r} "
                f"(it has {', '.join(sorted(self.signatures))})"
            ) from None

    def parse(self, body: bytes, ctx: RequestContext) -> Call | Answer:
        if ctx.method == "GET":
            named = parse_qs(ctx.query).get("signature_name", [""])[0]
            return self.signature(named).describe(), OK
        request = pb.PredictRequest()
        request.ParseFromString(body)
        given = {
            name: (tensors.to_array(proto, f"input {name!r}"), proto.dtype)
            for name, proto in request.inputs.items()
        }
        binding = self.bind(given, {"signature_name": request.signature_name})
        wanted = binding.target.select(list(request.output_filter))

        def answer(outputs: Outputs) -> Answer:
            response = pb.PredictResponse()
            for name in wanted:
                tensors.fill(response.outputs[name], outputs[name], f"output {name!r}")
            return response.SerializeToString(deterministic=True), OK

        return binding.call(answer)

    def bind(self, given: Given, parameters: Mapping[str, Any]) -> Binding:
        named = parameters.get("signature_name", "")
        if not isinstance(named, str):
            raise BadRequest("parameters.signature_name: must be a string")
        signature = self.signature(named)
        return Binding(
            signature.order(dict(given)),
            target=signature,
            group=signature.name if signature.batches else None,
        )

    def v2_tensors(self) -> tuple[list[v2.TensorMetadata], list[v2.TensorMetadata]]:
        name = self.default or min(self.signatures)
        return self.signatures[name].v2_tensors()

    def run(self, call: Call, inputs: tuple[Array, ...]) -> Outputs:
        signature: Signature = call.target
        feed = {
            spec.name: tf.constant(array, dtype=tf.as_dtype(_TF_NAME[spec.dtype]))
            for spec, array in zip(signature.inputs, inputs, strict=True)
        }
        results = self.functions[signature.name](**feed)
        if not isinstance(results, dict):
            results = {"output_0": results}
        return {name: value.numpy() for name, value in results.items()}


class TensorFlowGPUProcessor(TensorFlowProcessor):
    uses_gpu = True
