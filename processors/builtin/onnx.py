"""ONNX: a model run by ONNX Runtime, with two request forms (SPEC §16).

Codes: ``onnx`` and ``onnx_cpu`` run on the CPU; ``onnx_gpu`` runs on CUDA through ONNX
Runtime's CUDAExecutionProvider (the ``onnxruntime-gpu`` package) and refuses to load where
that provider is missing. ``model_entry`` is a ``.onnx`` file, or a directory holding one.

The form of a request is chosen by its first byte (``{`` is JSON; a protobuf PredictRequest
never starts with it) or by ``Content-Type: application/json``, and the answer comes in the
same form:

- protobuf: tf_request.proto's PredictRequest, inputs by name with the model's exact dtype,
  ``output_filter`` by name; ``signature_name`` is ignored (an ONNX graph has one entry);
  the answer is a PredictResponse.
- JSON: ``{"inputs": {"x": [[1.0, 2.0]]}, "output_filter": ["y"]}`` (``output_filter``
  optional) → ``{"outputs": {"y": [[0.5]]}}``. Nested lists take the model's dtype; numbers
  that do not fit it (a fraction for an integer input, say) are refused.

``GET`` answers the inputs and outputs as JSON, as the TensorFlow processor does. The Open
Inference Protocol (``/v2/models/{service}/infer``) feeds the same inputs by name, with the
model's exact datatype (platform ``onnxruntime_onnx``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

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
from processors.wire import jsonwire, tensors, v2
from processors.wire import tf_request_pb2 as pb

# ONNX Runtime's type strings → wire codes.
_WIRE = {
    "tensor(float)": tensors.DT_FLOAT,
    "tensor(double)": tensors.DT_DOUBLE,
    "tensor(float16)": tensors.DT_HALF,
    "tensor(bfloat16)": tensors.DT_BFLOAT16,
    "tensor(int32)": tensors.DT_INT32,
    "tensor(int16)": tensors.DT_INT16,
    "tensor(int8)": tensors.DT_INT8,
    "tensor(uint8)": tensors.DT_UINT8,
    "tensor(uint16)": tensors.DT_UINT16,
    "tensor(int64)": tensors.DT_INT64,
    "tensor(bool)": tensors.DT_BOOL,
    "tensor(string)": tensors.DT_STRING,
}


def _spec(node: Any) -> TensorSpec:
    shape = node.shape
    dims = None if shape is None else tuple(d if isinstance(d, int) else None for d in shape)
    return TensorSpec(node.name, dims, _WIRE.get(node.type, tensors.DT_INVALID))


def find_onnx(model_entry: str) -> Path:
    if not model_entry:
        raise ProcessorLoadError("model_path: the ONNX processor needs a .onnx file, none given")
    entry = Path(model_entry)
    if entry.is_file():
        return entry
    candidates = sorted(entry.glob("*.onnx"))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise ProcessorLoadError(
            f"model_entry: {entry.name} is a directory; name the .onnx file in it (found: {found})"
        )
    return candidates[0]


def _is_json(body: bytes, ctx: RequestContext) -> bool:
    content_type = next((v for k, v in ctx.headers.items() if k.lower() == "content-type"), "")
    return content_type.split(";")[0].strip().lower() == "application/json" or (
        body.lstrip()[:1] == b"{"
    )


class ONNXProcessor(TensorProcessor):
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    platform = "onnxruntime_onnx"

    def __init__(self) -> None:
        self.session: Any = None
        self.signature = Signature("", (), ())

    def load(self, model_entry: str, model_config: str) -> None:
        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise ProcessorLoadError(
                f"processor: ONNX Runtime here has no {', '.join(missing)} (it has "
                f"{', '.join(ort.get_available_providers())}); onnx_gpu needs onnxruntime-gpu"
            )
        path = find_onnx(model_entry)
        options = ort.SessionOptions()
        # ONNX Runtime sizes its pool to the machine's cores and pins a thread to each, past
        # the CPUs the instance was given: it gets as many threads as it has CPUs.
        options.intra_op_num_threads = cpu_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=self.providers
            )
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProcessorLoadError(
                f"model_path: {path.name} is not an ONNX model ONNX Runtime can load: {first}"
            ) from exc
        self.signature = Signature(
            "",
            tuple(_spec(node) for node in self.session.get_inputs()),
            tuple(_spec(node) for node in self.session.get_outputs()),
        )

    def parse(self, body: bytes, ctx: RequestContext) -> Call | Answer:
        if ctx.method == "GET":
            return self.signature.describe(with_name=False), OK
        if _is_json(body, ctx):
            return self._parse_json(body)
        request = pb.PredictRequest()
        request.ParseFromString(body)
        given = {
            name: (tensors.to_array(proto, f"input {name!r}"), proto.dtype)
            for name, proto in request.inputs.items()
        }
        binding = self.bind(given, {})
        wanted = self.signature.select(list(request.output_filter))

        def answer(outputs: Outputs) -> Answer:
            response = pb.PredictResponse()
            for name in wanted:
                tensors.fill(response.outputs[name], outputs[name], f"output {name!r}")
            # Map keys sorted: the same outputs give the same bytes whether the call ran
            # alone or in a batch (the map's own order follows how it was built).
            return response.SerializeToString(deterministic=True), OK

        return binding.call(answer)

    def _parse_json(self, body: bytes) -> Call:
        try:
            document = jsonwire.loads(body)
        except ValueError as exc:
            raise BadRequest(f"malformed JSON body: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("inputs"), dict):
            raise BadRequest('inputs: the JSON body must be {"inputs": {"<name>": [...]}, ...}')
        wanted_raw = document.get("output_filter", [])
        if not isinstance(wanted_raw, list) or not all(isinstance(w, str) for w in wanted_raw):
            raise BadRequest("output_filter: must be a list of output names")
        given = {}
        specs = {spec.name: spec for spec in self.signature.inputs}
        for name, value in document["inputs"].items():
            spec = specs.get(name)
            dtype = spec.dtype if spec is not None else tensors.DT_FLOAT
            given[name] = (_json_array(value, dtype, f"input {name!r}"), dtype)
        binding = self.bind(given, {})
        wanted = self.signature.select(wanted_raw)

        def answer(outputs: Outputs) -> Answer:
            document = {"outputs": {name: _json_value(outputs[name]) for name in wanted}}
            return jsonwire.dumps(document), OK

        return binding.call(answer)

    def bind(self, given: Given, parameters: Mapping[str, Any]) -> Binding:
        inputs = self.signature.order(dict(given))
        return Binding(inputs, group="graph" if self.signature.batches else None)

    def v2_tensors(self) -> tuple[list[v2.TensorMetadata], list[v2.TensorMetadata]]:
        return self.signature.v2_tensors()

    def run(self, call: Call, inputs: tuple[Array, ...]) -> Outputs:
        feed = {
            name: _text(array) if array.dtype.kind == "O" else array
            for name, array in zip(self.signature.input_names, inputs, strict=True)
        }
        results = self.session.run(None, feed)
        return dict(zip(self.signature.output_names, results, strict=True))


def _text(array: Array) -> Array:
    # ONNX Runtime takes string tensors as str objects; the wire carries bytes.
    return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(array)


def _json_array(value: object, code: int, name: str) -> Array:
    dtype = tensors.numpy_dtype(code, name)
    try:
        raw = np.array(value, dtype=object if dtype.kind == "O" else None)
    except ValueError as exc:
        raise BadRequest(f"{name}: not a rectangular nested list ({exc})") from None
    if raw.dtype == object and dtype.kind != "O":
        raise BadRequest(f"{name}: not a rectangular nested list of numbers")
    if dtype.kind == "O":
        if not all(isinstance(v, str) for v in raw.ravel()):
            raise BadRequest(f"{name}: the model takes strings")
        return raw
    if dtype.kind == "b":
        if raw.size and raw.dtype.kind != "b":
            raise BadRequest(f"{name}: the model takes booleans (true/false)")
        return raw.astype(dtype)
    if raw.size and raw.dtype.kind not in "biuf":
        raise BadRequest(f"{name}: the model takes numbers, got {raw.dtype.name} values")
    if dtype.kind in "iu":
        if raw.size and raw.dtype.kind == "f" and np.any(raw != np.floor(raw)):
            raise BadRequest(f"{name}: the model takes {dtype.name}, a value has a fraction")
        info = np.iinfo(dtype)
        if raw.size and (raw.min() < info.min or raw.max() > info.max):
            raise BadRequest(f"{name}: a value is outside {dtype.name}'s range")
    return raw.astype(dtype)


def _json_value(array: Array) -> Array:
    # String tensors too are written by jsonwire.dumps (bytes decoded, as text).
    if array.dtype.kind == "f" and array.dtype != np.float64:
        # float32 → float64 is exact, so the JSON number is the model's value to the bit.
        array = array.astype(np.float64)
    return array  # written by jsonwire.dumps, without a detour through Python lists


class ONNXGPUProcessor(ONNXProcessor):
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")


def cpu_threads() -> int:
    """The threads a framework should use: ``OMP_NUM_THREADS`` as the instance was started
    with (its ``cpu``), else the CPUs this process may run on."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, len(os.sched_getaffinity(0)))
