"""PyTorch: a TorchScript model served with pytorch_predict.proto (SPEC §6).

``pytorch_cpu_*`` / ``pytorch_gpu_*`` codes load ``model_entry`` — a file written by
``torch.jit.script(model).save(path)`` or ``torch.jit.trace(...).save(path)``, or a
directory holding exactly one such ``.pt``/``.pth``/``.torchscript`` file — with the
PyTorch release this installation has.

Inputs: ``inputs`` are the positional arguments of ``forward``; ``map_inputs`` are its
keyword arguments, or — when ``forward`` takes one ``Dict[str, Tensor]`` argument besides the
positional ones — that dictionary. Outputs: a tensor or a tuple/list of tensors answers
``outputs`` (``output_filter`` picks indexes); a ``Dict[str, Tensor]`` answers
``map_outputs``. Booleans travel as 0/1 in ``int_val`` (the file has no ``bool_val``) and
bfloat16 outputs widen to DT_FLOAT. The GPU codes move the model and every input to CUDA
(``.cuda()``) and refuse to load where PyTorch sees no GPU.

The Open Inference Protocol (``/v2/models/{service}/infer``, platform ``pytorch_libtorch``)
feeds inputs by name as ``forward``'s keyword arguments (or its ``Dict[str, Tensor]``
argument), as ``map_inputs`` does; outputs are answered as ``output_0``, ``output_1``, … (or by
their keys for a dict). A TorchScript file records neither dtypes nor shapes, so the
protocol's metadata lists what ``model_config`` declares, in the protocol's own terms —
``{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}], "outputs": [{"name":
"probs", "datatype": "FP32", "shape": [-1, 3]}]}`` — and declared output names replace the
positional ones; without a declaration the metadata's lists are empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from processors.base import ProcessorLoadError, RequestContext
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
from processors.wire import pytorch_predict_pb2 as pb
from processors.wire import tensors, v2

SUFFIXES = (".pt", ".pth", ".torchscript", ".jit")


def find_torchscript(model_entry: str) -> Path:
    if not model_entry:
        raise ProcessorLoadError(
            "model_path: the PyTorch processor needs a TorchScript file, none was given"
        )
    entry = Path(model_entry)
    if entry.is_file():
        return entry
    candidates = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise ProcessorLoadError(
            f"model_entry: {entry.name} is a directory; name the TorchScript file in it "
            f"(files ending {', '.join(SUFFIXES)}: {found})"
        )
    return candidates[0]


def declared_tensors(
    model_config: str,
) -> tuple[list[v2.TensorMetadata], list[v2.TensorMetadata]]:
    """The inputs and outputs ``model_config`` declares (none when it declares none)."""
    try:
        document = json.loads(model_config) if model_config.strip().startswith("{") else {}
    except ValueError:
        document = {}  # free text: the processor reads nothing from it
    declared: list[list[v2.TensorMetadata]] = []
    for key in ("inputs", "outputs"):
        value = document.get(key, [])
        if not isinstance(value, list):
            raise ProcessorLoadError(f"model_config.{key}: must be a list of tensors")
        try:
            tensors_ = [v2.TensorMetadata.model_validate(item) for item in value]
            for tensor in tensors_:
                v2.numpy_of(tensor.datatype, tensor.name)
        except (ValidationError, v2.V2Error) as exc:
            raise ProcessorLoadError(f"model_config.{key}: {exc}") from None
        declared.append(tensors_)
    return declared[0], declared[1]


class PyTorchProcessor(TensorProcessor):
    device = "cpu"
    platform = "pytorch_libtorch"

    def __init__(self) -> None:
        self.module: Any = None
        self.parameters: list[str] = []  # forward's argument names, without self
        self.dict_parameter: str | None = None  # the Dict[str, Tensor] argument, if any
        self.declared: tuple[list[v2.TensorMetadata], list[v2.TensorMetadata]] = ([], [])

    def load(self, model_entry: str, model_config: str) -> None:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ProcessorLoadError(
                "processor: a pytorch_gpu code needs a GPU, and PyTorch sees none "
                "(is CUDA_VISIBLE_DEVICES set, and is a CUDA build of PyTorch installed?)"
            )
        self.declared = declared_tensors(model_config)
        path = find_torchscript(model_entry)
        try:
            module = torch.jit.load(str(path), map_location=self.device)
        except Exception as exc:
            first = str(exc).strip().split(". ")[0] or type(exc).__name__
            raise ProcessorLoadError(
                f"model_path: {path.name} is not a TorchScript model ({first}); save one with "
                "torch.jit.script(model).save(path) or torch.jit.trace(model, example).save(path)"
            ) from exc
        self.module = module.eval()
        forward = getattr(module, "forward", None)
        schema = getattr(forward, "schema", None)
        if schema is not None:
            arguments = list(schema.arguments)[1:]
            self.parameters = [a.name for a in arguments]
            dicts = [a.name for a in arguments if str(a.type).startswith("Dict[str, Tensor]")]
            self.dict_parameter = dicts[0] if len(dicts) == 1 else None

    def parse(self, body: bytes, ctx: RequestContext) -> Call | Answer:
        request = pb.PredictRequest()
        request.ParseFromString(body)
        positional = [
            tensors.to_array(proto, f"input {index}") for index, proto in enumerate(request.inputs)
        ]
        names = sorted(request.map_inputs)
        named = [tensors.to_array(request.map_inputs[n], f"map_inputs {n!r}") for n in names]
        for index, array in enumerate(positional):
            _check_numeric(array, f"input {index}")
        for name, array in zip(names, named, strict=True):
            _check_numeric(array, f"map_inputs {name!r}")
        if not positional and not named:
            raise BadRequest(
                "inputs: the request feeds no tensor (inputs and map_inputs are empty)"
            )
        wanted = list(request.output_filter)
        layout = (len(positional), tuple(names))
        return Binding((*positional, *named), target=layout, group=layout).call(
            lambda outputs: _answer(outputs, wanted)
        )

    def bind(self, given: Given, parameters: Mapping[str, Any]) -> Binding:
        names = sorted(given)
        if not names:
            raise BadRequest("inputs: the request feeds no tensor")
        for name in names:
            _check_numeric(given[name][0], f"input {name!r}")
        layout = (0, tuple(names))
        return Binding(tuple(given[name][0] for name in names), target=layout, group=layout)

    def output_name(self, key: str | int) -> str:
        outputs = self.declared[1]
        if isinstance(key, int) and key < len(outputs):
            return outputs[key].name
        return super().output_name(key)

    def v2_tensors(self) -> tuple[list[v2.TensorMetadata], list[v2.TensorMetadata]]:
        return self.declared

    def run(self, call: Call, inputs: tuple[Array, ...]) -> Outputs:
        count, names = call.target
        feed = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in inputs]
        args, named = feed[:count], dict(zip(names, feed[count:], strict=True))
        with torch.inference_mode():
            if not named:
                result = self.module(*args)
            elif set(named) <= set(self.parameters) and self.dict_parameter not in named:
                result = self.module(*args, **named)
            elif self.dict_parameter is not None:
                result = self.module(*args, named)
            else:
                raise BadRequest(
                    f"map_inputs: forward takes {', '.join(self.parameters) or 'no arguments'}, "
                    f"not {', '.join(named)}, and no Dict[str, Tensor] argument"
                )
        return _outputs(result)


def _check_numeric(array: Array, name: str) -> None:
    if array.dtype.kind == "O":
        raise BadRequest(f"{name}: DT_STRING tensors cannot be fed to a TorchScript model")


def _numpy(value: object, name: str) -> Array:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()
    if isinstance(value, bool | int | float):
        return np.asarray(value)
    raise BadRequest(f"{name}: the model answered a {type(value).__name__}, not a tensor")


def _outputs(result: object) -> dict[str | int, Array]:
    """Positions (int keys) for a tensor or a sequence of them, names for a dict."""
    if isinstance(result, dict):
        return {str(k): _numpy(v, f"output {k!r}") for k, v in result.items()}
    if isinstance(result, tuple | list):
        return {i: _numpy(v, f"output {i}") for i, v in enumerate(result)}
    return {0: _numpy(result, "output 0")}


def _answer(outputs: Outputs, wanted: list[int]) -> Answer:
    response = pb.PredictResponse()
    named = [k for k in outputs if isinstance(k, str)]
    if named:
        if wanted:
            raise BadRequest(
                "output_filter: the model answers named outputs (map_outputs: "
                f"{', '.join(named)}); output_filter selects positional ones"
            )
        for name in named:
            tensors.fill(response.map_outputs[name], outputs[name], f"output {name!r}")
        return response.SerializeToString(), OK
    count = len(outputs)
    for index in wanted:
        if not 0 <= index < count:
            raise BadRequest(
                f"output_filter: index {index} is out of range (the model answers {count} "
                f"output{'s' if count != 1 else ''})"
            )
    for index in wanted or range(count):
        tensors.fill(response.outputs.add(), outputs[index], f"output {index}")
    return response.SerializeToString(), OK


class PyTorchGPUProcessor(PyTorchProcessor):
    device = "cuda"
