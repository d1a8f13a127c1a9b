"""numpy arrays ⇄ the ``ArrayProto`` tensors of tf_request.proto and pytorch_predict.proto.

Both files share the tensor layout (dtype, shape, one repeated field per value type; the PyTorch
one has no ``bool_val``, so booleans travel in ``int_val`` there). The processors decode
requests with :func:`to_array` and encode answers with :func:`fill`; the SDK does the
opposite with the same two functions, so both ends agree on every dtype:

=================================  ===============  ==============
ArrayDataType                      numpy            values in
=================================  ===============  ==============
DT_FLOAT / DT_DOUBLE               float32/float64  float_val / double_val
DT_HALF, DT_BFLOAT16               float16/bfloat16 float_val (exact: both widen to float32)
DT_INT32 INT16 INT8 UINT8 UINT16   same width       int_val (range-checked)
DT_QINT8 QUINT8 QINT16 QUINT16     int8 … uint16    int_val
DT_QINT32                          int32            int_val
DT_INT64                           int64            int64_val
DT_BOOL                            bool             bool_val (int_val in PyTorch's)
DT_STRING                          object (bytes)   string_val
=================================  ===============  ==============

The complex, resource and variant types have no value field and are refused. Every error is
a :class:`TensorError` naming the tensor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from processors.wire import tf_request_pb2 as tf_pb

DT_INVALID = tf_pb.DT_INVALID
DT_FLOAT = tf_pb.DT_FLOAT
DT_DOUBLE = tf_pb.DT_DOUBLE
DT_INT32 = tf_pb.DT_INT32
DT_UINT8 = tf_pb.DT_UINT8
DT_INT16 = tf_pb.DT_INT16
DT_INT8 = tf_pb.DT_INT8
DT_STRING = tf_pb.DT_STRING
DT_COMPLEX64 = tf_pb.DT_COMPLEX64
DT_INT64 = tf_pb.DT_INT64
DT_BOOL = tf_pb.DT_BOOL
DT_QINT8 = tf_pb.DT_QINT8
DT_QUINT8 = tf_pb.DT_QUINT8
DT_QINT32 = tf_pb.DT_QINT32
DT_BFLOAT16 = tf_pb.DT_BFLOAT16
DT_QINT16 = tf_pb.DT_QINT16
DT_QUINT16 = tf_pb.DT_QUINT16
DT_UINT16 = tf_pb.DT_UINT16
DT_COMPLEX128 = tf_pb.DT_COMPLEX128
DT_HALF = tf_pb.DT_HALF

# code → (numpy dtype name, value field). bfloat16 is not a numpy dtype: ml_dtypes provides it.
_LAYOUT: dict[int, tuple[str, str]] = {
    DT_FLOAT: ("float32", "float_val"),
    DT_DOUBLE: ("float64", "double_val"),
    DT_HALF: ("float16", "float_val"),
    DT_BFLOAT16: ("bfloat16", "float_val"),
    DT_INT32: ("int32", "int_val"),
    DT_INT16: ("int16", "int_val"),
    DT_INT8: ("int8", "int_val"),
    DT_UINT8: ("uint8", "int_val"),
    DT_UINT16: ("uint16", "int_val"),
    DT_QINT8: ("int8", "int_val"),
    DT_QUINT8: ("uint8", "int_val"),
    DT_QINT16: ("int16", "int_val"),
    DT_QUINT16: ("uint16", "int_val"),
    DT_QINT32: ("int32", "int_val"),
    DT_INT64: ("int64", "int64_val"),
    DT_BOOL: ("bool", "bool_val"),
    DT_STRING: ("object", "string_val"),
}

# numpy dtype name → the code an array of it travels as.
_CODE_OF: dict[str, int] = {
    "float32": DT_FLOAT,
    "float64": DT_DOUBLE,
    "float16": DT_HALF,
    "bfloat16": DT_BFLOAT16,
    "int32": DT_INT32,
    "int16": DT_INT16,
    "int8": DT_INT8,
    "uint8": DT_UINT8,
    "uint16": DT_UINT16,
    "int64": DT_INT64,
    "bool": DT_BOOL,
    "object": DT_STRING,
}


class TensorError(ValueError):
    """A tensor that cannot cross the wire as it is; the message names it and says why."""


def dtype_name(code: int) -> str:
    """``DT_FLOAT`` for 1; the number itself when the enum has no such value."""
    try:
        return tf_pb.ArrayDataType.Name(code)
    except ValueError:
        return str(code)


def numpy_dtype(code: int, name: str = "tensor") -> np.dtype[Any]:
    """The numpy dtype a wire dtype decodes to."""
    try:
        type_name, _ = _LAYOUT[code]
    except KeyError:
        raise TensorError(
            f"{name}: dtype {dtype_name(code)} is not supported (supported: "
            f"{', '.join(sorted({dtype_name(c) for c in _LAYOUT}))})"
        ) from None
    if type_name == "bfloat16":
        return _bfloat16(name)
    return np.dtype(type_name)


def wire_dtype(dtype: np.dtype[Any] | type, name: str = "tensor") -> int:
    """The ArrayDataType code an array of this numpy dtype travels as."""
    dtype = np.dtype(dtype)
    if dtype.kind in "SU":
        return DT_STRING
    code = _CODE_OF.get(dtype.name)
    if code is None:
        raise TensorError(
            f"{name}: numpy dtype {dtype.name} has no ArrayDataType (supported: "
            f"{', '.join(sorted(_CODE_OF))}, and bytes/str)"
        )
    return code


def _bfloat16(name: str) -> np.dtype[Any]:
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - installed with every framework that has bfloat16
        raise TensorError(f"{name}: DT_BFLOAT16 needs the ml_dtypes package") from None
    return np.dtype(ml_dtypes.bfloat16)


def _field(proto: Any, field: str) -> str:
    # PyTorch's ArrayProto has no bool_val: booleans travel as 0/1 in int_val.
    if field == "bool_val" and "bool_val" not in proto.DESCRIPTOR.fields_by_name:
        return "int_val"
    return field


def shape_of(proto: Any) -> list[int]:
    return list(proto.array_shape.dim)


def to_array(proto: Any, name: str = "tensor") -> np.ndarray[Any, Any]:
    """Decode one ArrayProto, checking the values fill its shape exactly."""
    dtype = numpy_dtype(proto.dtype, name)
    field = _field(proto, _LAYOUT[proto.dtype][1])
    values = getattr(proto, field)
    shape = shape_of(proto)
    if any(d < 0 for d in shape):
        raise TensorError(f"{name}: shape {shape} has a negative dimension")
    expected = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(values) != expected:
        raise TensorError(
            f"{name}: shape {shape} needs {expected} values, {field} holds {len(values)}"
        )
    if dtype.kind == "O":
        array = np.empty(expected, dtype=object)
        array[:] = list(values)
    elif field == "int_val" and dtype.kind in "iub":
        wide = np.asarray(values, dtype=np.int64)
        if dtype.kind == "b":
            if wide.size and (wide.min() < 0 or wide.max() > 1):
                raise TensorError(f"{name}: DT_BOOL values in int_val must be 0 or 1")
        else:
            info = np.iinfo(dtype)
            if wide.size and (wide.min() < info.min or wide.max() > info.max):
                raise TensorError(
                    f"{name}: a value of int_val is outside {dtype_name(proto.dtype)}'s range "
                    f"[{info.min}, {info.max}]"
                )
        array = wide.astype(dtype)
    elif field == "float_val" and dtype != np.float32:
        # half/bfloat16 travel widened to float32; narrowing back is exact for values that
        # came from that type.
        array = np.asarray(values, dtype=np.float32).astype(dtype)
    else:
        array = np.asarray(values, dtype=dtype)
    return array.reshape(shape)


def _bytes(value: object, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, np.bytes_ | bytearray | memoryview):
        return bytes(value)
    raise TensorError(f"{name}: a DT_STRING value must be bytes or str, got {type(value).__name__}")


def fill(
    proto: Any,
    array: np.ndarray[Any, Any] | Iterable[Any],
    name: str = "tensor",
    *,
    dtype: int | None = None,
    shape: Iterable[int] | None = None,
) -> Any:
    """Write an array into ``proto`` (its dtype, shape and values); return ``proto``.

    ``dtype`` forces a wire dtype (the SDK's ``add_feed(name, shape, dtype, values)``), and
    ``shape`` a shape the flat values must fill; by default both come from the array.
    """
    if dtype is None:
        data = np.asarray(array)
        if data.dtype.kind == "S":
            # numpy's fixed-width bytes drop trailing NULs; objects keep each value whole.
            data = np.array(array, dtype=object)
        code = wire_dtype(data.dtype, name)
    else:
        code = dtype
        target = numpy_dtype(code, name)
        if target.kind == "O":
            values = array.ravel().tolist() if isinstance(array, np.ndarray) else list(array)
            data = np.empty(len(values), dtype=object)
            data[:] = values
        else:
            data = np.asarray(array)
            if data.dtype != target:
                if target.kind in "iu" and data.dtype.kind == "f" and np.any(data != data // 1):
                    raise TensorError(f"{name}: {dtype_name(code)} values must be whole numbers")
                data = data.astype(target)
    dims = list(data.shape) if shape is None else [int(d) for d in shape]
    if shape is not None:
        expected = int(np.prod(dims, dtype=np.int64)) if dims else 1
        if data.size != expected:
            raise TensorError(f"{name}: shape {dims} needs {expected} values, got {data.size}")
    proto.Clear()
    proto.dtype = code
    proto.array_shape.dim.extend(dims)
    field = _field(proto, _LAYOUT[code][1])
    flat = data.ravel()
    if code == DT_STRING:
        getattr(proto, field).extend(_bytes(v, name) for v in flat)
    elif field == "float_val" and flat.dtype != np.float32:
        proto.float_val.extend(flat.astype(np.float32).tolist())
    elif field == "int_val" and flat.dtype.kind == "b":
        proto.int_val.extend(flat.astype(np.int32).tolist())
    else:
        getattr(proto, field).extend(flat.tolist())
    return proto
