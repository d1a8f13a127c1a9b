"""The Open Inference Protocol (KServe v2, REST) as numpy arrays: what Triton and KServe
clients send to ``/v2/models/{name}[/versions/{v}]/infer`` and read back (SPEC §16).

Requests and answers are JSON documents (the pydantic models below) whose tensors hold
row-major ``data``, nested or flat, or — the binary tensor extension — name a
``binary_data_size`` whose bytes follow the JSON in the body; the
``Inference-Header-Content-Length`` header then says where the JSON ends. BYTES elements
travel in binary as a 4-byte little-endian length and the bytes. An output is answered in
binary when its request asks ``"parameters": {"binary_data": true}``, or every output when the
request's parameters say ``binary_data_output: true`` (what tritonclient sends when it names
no outputs).

==========  ======================  ==========  ===================
datatype    numpy                   datatype    numpy
==========  ======================  ==========  ===================
BOOL        bool                    INT8…INT64  int8 … int64
UINT8…64    uint8 … uint64          FP16/32/64  float16/32/64
BYTES       object (bytes values)
==========  ======================  ==========  ===================

Every problem is a :class:`V2Error` naming the field (``inputs[0].shape``) and what is wrong;
the runtime answers it 400 as ``{"error": "..."}``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The paths live apart (the runtime routes by them without loading numpy); they are part of
# this module's interface all the same.
from processors.wire.v2paths import MODELS as MODELS
from processors.wire.v2paths import PREFIX as PREFIX
from processors.wire.v2paths import Route as Route
from processors.wire.v2paths import error_body as error_body
from processors.wire.v2paths import is_infer as is_infer
from processors.wire.v2paths import route as route

HEADER_LENGTH = "inference-header-content-length"  # lower-case, as the HTTP kit keeps names

_NUMPY: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
_DATATYPE = {numpy: datatype for datatype, numpy in _NUMPY.items()}
SUPPORTED = ", ".join(_NUMPY)


class V2Error(ValueError):
    """A request the protocol cannot carry or the model cannot take; answered 400."""


class _Model(BaseModel):
    # The protocol lets every object carry extension fields: they are kept, not refused.
    model_config = ConfigDict(extra="allow")


class RequestInput(_Model):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(_Model):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Model):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class TensorMetadata(_Model):
    name: str
    datatype: str
    shape: list[int]


class ResponseOutput(_Model):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(_Model):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class ModelMetadata(_Model):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


def datatype_of(dtype: np.dtype[Any], name: str = "tensor") -> str:
    """The datatype an array of ``dtype`` travels as."""
    if dtype.kind in "OSU":
        return "BYTES"
    found = _DATATYPE.get(dtype.name)
    if found is None:
        raise V2Error(f"{name}: numpy dtype {dtype.name} has no v2 datatype ({SUPPORTED})")
    return found


def numpy_of(datatype: str, name: str = "tensor") -> np.dtype[Any]:
    found = _NUMPY.get(datatype)
    if found is None:
        raise V2Error(f"{name}.datatype: {datatype!r} is not supported (supported: {SUPPORTED})")
    return np.dtype(found)


def metadata(
    name: str, dtype: np.dtype[Any] | str, shape: Sequence[int | None] | None
) -> TensorMetadata:
    """One tensor's metadata; a free dimension (None) is -1, an unknown rank ``[-1]``."""
    datatype = dtype if isinstance(dtype, str) else datatype_of(np.dtype(dtype), name)
    dims = [-1] if shape is None else [-1 if d is None else int(d) for d in shape]
    return TensorMetadata(name=name, datatype=datatype, shape=dims)


def _problems(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        lines.append(f"{where.lstrip('.') or 'body'}: {err['msg']}")
    return "; ".join(lines)


@dataclass(frozen=True)
class Decoded:
    request: InferenceRequest
    inputs: dict[str, np.ndarray[Any, Any]]  # in the request's order


def decode_request(body: bytes, headers: Mapping[str, str]) -> Decoded:
    """An inference request body (JSON, then any binary tensors) → its named arrays."""
    raw_length = headers.get(HEADER_LENGTH)
    if raw_length is None:
        header, binary = body, b""
    else:
        try:
            length = int(raw_length)
        except ValueError:
            raise V2Error(
                f"Inference-Header-Content-Length: {raw_length!r} is not a number"
            ) from None
        if not 0 < length <= len(body):
            raise V2Error(
                f"Inference-Header-Content-Length: {length} is outside the {len(body)}-byte body"
            )
        header, binary = body[:length], body[length:]
    try:
        request = InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        raise V2Error(f"malformed inference request: {_problems(exc)}") from None
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    view = memoryview(binary)
    for index, tensor in enumerate(request.inputs):
        where = f"inputs[{index}] ({tensor.name!r})"
        if tensor.name in inputs:
            raise V2Error(f"{where}: the input is given twice")
        if any(d < 0 for d in tensor.shape):
            raise V2Error(f"{where}.shape: {tensor.shape} has a negative dimension")
        dtype = numpy_of(tensor.datatype, where)
        count = int(np.prod(tensor.shape, dtype=np.int64)) if tensor.shape else 1
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if tensor.data is not None:
                raise V2Error(f"{where}: has both data and parameters.binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise V2Error(f"{where}.parameters.binary_data_size: must be a byte count")
            if offset + size > len(binary):
                raise V2Error(
                    f"{where}.parameters.binary_data_size: {size} bytes at offset {offset} "
                    f"run past the {len(binary)} binary bytes after the JSON"
                )
            array = _from_binary(view[offset : offset + size], dtype, count, where)
            offset += size
        elif tensor.data is None:
            raise V2Error(f"{where}: no data (give data, or parameters.binary_data_size)")
        else:
            array = _from_json(tensor.data, dtype, count, where)
        inputs[tensor.name] = array.reshape(tensor.shape)
    if offset != len(binary):
        raise V2Error(
            f"body: {len(binary) - offset} bytes after the JSON belong to no input "
            "(binary_data_size of the inputs adds up to less)"
        )
    for index, output in enumerate(request.outputs or []):
        if "classification" in (output.parameters or {}):
            raise V2Error(f"outputs[{index}].parameters.classification: not supported")
    return Decoded(request, inputs)


def _from_binary(
    raw: memoryview, dtype: np.dtype[Any], count: int, where: str
) -> np.ndarray[Any, Any]:
    if dtype.kind == "O":
        values: list[bytes] = []
        at = 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise V2Error(f"{where}: BYTES data ends inside an element's 4-byte length")
            (size,) = struct.unpack_from("<I", raw, at)
            at += 4
            if at + size > len(raw):
                raise V2Error(f"{where}: a BYTES element of {size} bytes runs past the data")
            values.append(bytes(raw[at : at + size]))
            at += size
        if len(values) != count:
            raise V2Error(
                f"{where}: the shape needs {count} elements, the data holds {len(values)}"
            )
        array = np.empty(count, dtype=object)
        array[:] = values
        return array
    if len(raw) != count * dtype.itemsize:
        raise V2Error(
            f"{where}.parameters.binary_data_size: the shape needs {count} × {dtype.itemsize} "
            f"= {count * dtype.itemsize} bytes, got {len(raw)}"
        )
    # A copy: frameworks want arrays they may write to, and the body is read-only.
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=True)


def _from_json(data: Any, dtype: np.dtype[Any], count: int, where: str) -> np.ndarray[Any, Any]:
    if dtype.kind == "O":
        flat = _flatten(data, where)
        if not all(isinstance(v, str) for v in flat):
            raise V2Error(f"{where}.data: BYTES values must be strings")
        array = np.empty(len(flat), dtype=object)
        array[:] = [v.encode() for v in flat]
    else:
        try:
            raw = np.asarray(data)
        except ValueError as exc:
            raise V2Error(f"{where}.data: not a rectangular nested list ({exc})") from None
        raw = raw.reshape(-1)
        if raw.size and raw.dtype.kind not in "biuf":
            raise V2Error(f"{where}.data: {dtype.name} values must be numbers, got {raw.dtype}")
        if dtype.kind == "b" and raw.size and raw.dtype.kind != "b":
            raise V2Error(f"{where}.data: BOOL values must be true or false")
        if dtype.kind in "iu" and raw.size:
            if raw.dtype.kind == "f" and np.any(raw != np.floor(raw)):
                raise V2Error(f"{where}.data: {dtype.name} values must be whole numbers")
            info = np.iinfo(dtype)
            if raw.min() < info.min or raw.max() > info.max:
                raise V2Error(f"{where}.data: a value is outside {dtype.name}'s range")
        array = raw.astype(dtype)
    if array.size != count:
        raise V2Error(f"{where}: the shape needs {count} values, data holds {array.size}")
    return array


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


@dataclass(frozen=True)
class Wanted:
    """Which outputs a request asks for, and which of them in binary."""

    names: list[str] | None  # None: every output of the model
    binary: dict[str, bool]
    binary_default: bool


def wanted(request: InferenceRequest) -> Wanted:
    default = bool((request.parameters or {}).get("binary_data_output", False))
    if request.outputs is None:
        return Wanted(None, {}, default)
    names = [output.name for output in request.outputs]
    if len(set(names)) != len(names):
        raise V2Error("outputs: an output is asked for twice")
    binary = {
        output.name: bool((output.parameters or {}).get("binary_data", default))
        for output in request.outputs
    }
    return Wanted(names, binary, default)


def encode_response(
    model: str,
    version: str | None,
    request_id: str | None,
    outputs: Mapping[str, np.ndarray[Any, Any]],
    want: Wanted,
) -> tuple[bytes, dict[str, str]]:
    """The answer body and its headers: JSON, then the binary outputs in their order."""
    parts: list[ResponseOutput] = []
    binary: list[bytes] = []
    for name, array in outputs.items():
        array = np.asarray(array)
        if array.dtype.name == "bfloat16":  # no v2 JSON or numpy type: widened, exactly
            array = array.astype(np.float32)
        datatype = datatype_of(array.dtype, f"output {name!r}")
        shape = [int(d) for d in array.shape]
        if want.binary.get(name, want.binary_default):
            raw = _to_binary(array, datatype)
            binary.append(raw)
            parts.append(
                ResponseOutput(
                    name=name,
                    shape=shape,
                    datatype=datatype,
                    parameters={"binary_data_size": len(raw)},
                )
            )
        else:
            parts.append(
                ResponseOutput(
                    name=name, shape=shape, datatype=datatype, data=_to_json(array, name)
                )
            )
    document = InferenceResponse(
        model_name=model, model_version=version, id=request_id, outputs=parts
    )
    header = document.model_dump_json(exclude_none=True).encode()
    if not binary:
        return header, {"content-type": "application/json"}
    headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
    return b"".join([header, *binary]), headers


def _to_binary(array: np.ndarray[Any, Any], datatype: str) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    chunks = []
    for value in array.ravel():
        raw = value if isinstance(value, bytes) else str(value).encode()
        chunks.append(struct.pack("<I", len(raw)))
        chunks.append(raw)
    return b"".join(chunks)


def _to_json(array: np.ndarray[Any, Any], name: str) -> list[Any]:
    flat = array.ravel()
    if flat.dtype.kind not in "OSU":
        # float16/float32 → Python float is exact, so the JSON number is the model's value.
        return list(flat.tolist())
    values = []
    for value in flat.tolist():
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError:
                raise V2Error(
                    f"output {name!r}: holds bytes that are not UTF-8 text; ask for it with "
                    '"parameters": {"binary_data": true}'
                ) from None
        values.append(str(value))
    return values
