"""A model's inputs and outputs as names, shapes and wire dtypes, checked against requests.

TensorFlow and ONNX Runtime both describe their models this way; the processors turn their
framework's description into :class:`TensorSpec` values and share the checks and the JSON a
``GET`` on the service answers (SPEC §6)::

    {"signature_name": "predict_images",
     "inputs": [{"name": "images", "shape": [-1, 784], "type": "DT_FLOAT"}],
     "outputs": [{"name": "scores", "shape": [-1, 10], "type": "DT_FLOAT"}]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from processors.builtin.tensor import Array, BadRequest
from processors.wire import v2
from processors.wire.tensors import TensorError, dtype_name, numpy_dtype


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...] | None  # None: any rank; a None dimension: any size
    dtype: int  # ArrayDataType code

    def describe(self) -> dict[str, Any]:
        shape = None if self.shape is None else [-1 if d is None else d for d in self.shape]
        return {"name": self.name, "shape": shape, "type": dtype_name(self.dtype)}

    def v2(self) -> v2.TensorMetadata:
        """This tensor in the Open Inference Protocol's metadata."""
        try:
            datatype = v2.datatype_of(numpy_dtype(self.dtype, self.name), self.name)
        except (TensorError, v2.V2Error):  # bfloat16, quantized: no v2 datatype; named as is
            datatype = dtype_name(self.dtype)
        return v2.metadata(self.name, datatype, self.shape)

    @property
    def batches(self) -> bool:
        """Whether the first dimension is free, so requests may be stacked along it."""
        return self.shape is not None and len(self.shape) > 0 and self.shape[0] is None

    def check(self, array: Array, wire: int) -> None:
        """Refuse a tensor whose wire dtype or shape the model cannot take."""
        if wire != self.dtype:
            raise BadRequest(
                f"input {self.name!r}: the model takes {dtype_name(self.dtype)}, "
                f"the request sent {dtype_name(wire)}"
            )
        if not self.fits(array.shape):
            raise BadRequest(
                f"input {self.name!r}: shape {list(array.shape)} does not match the model's "
                f"{self.describe()['shape']}"
            )

    def fits(self, shape: Sequence[int]) -> bool:
        if self.shape is None:
            return True
        if len(shape) != len(self.shape):
            return False
        return all(want is None or want == got for want, got in zip(self.shape, shape, strict=True))


@dataclass(frozen=True)
class Signature:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def describe(self, *, with_name: bool = True) -> bytes:
        document: dict[str, Any] = {"signature_name": self.name} if with_name else {}
        document["inputs"] = [spec.describe() for spec in self.inputs]
        document["outputs"] = [spec.describe() for spec in self.outputs]
        return json.dumps(document).encode()

    def v2_tensors(self) -> tuple[list[v2.TensorMetadata], list[v2.TensorMetadata]]:
        return [spec.v2() for spec in self.inputs], [spec.v2() for spec in self.outputs]

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    @property
    def batches(self) -> bool:
        return all(spec.batches for spec in self.inputs)

    def order(self, given: dict[str, tuple[Array, int]]) -> tuple[Array, ...]:
        """The request's arrays in this signature's input order, each checked."""
        names = self.input_names
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise BadRequest(
                f"unknown input {unknown[0]!r} (the signature {self.name!r} takes "
                f"{', '.join(names)})"
            )
        missing = [name for name in names if name not in given]
        if missing:
            raise BadRequest(
                f"missing input {missing[0]!r} (the signature {self.name!r} takes "
                f"{', '.join(names)})"
            )
        arrays = []
        for spec in self.inputs:
            array, wire = given[spec.name]
            spec.check(array, wire)
            arrays.append(array)
        return tuple(arrays)

    def select(self, wanted: Sequence[str]) -> list[str]:
        """The outputs a request's output_filter names (every output when it is empty)."""
        names = self.output_names
        for name in wanted:
            if name not in names:
                raise BadRequest(
                    f"output_filter: unknown output {name!r} (the signature {self.name!r} "
                    f"answers {', '.join(names)})"
                )
        return list(dict.fromkeys(wanted)) if wanted else names
