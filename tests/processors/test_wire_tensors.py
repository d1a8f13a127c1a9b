"""numpy ⇄ ArrayProto (processors/wire/tensors.py), for both tensor wire formats."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from processors.wire import pytorch_predict_pb2, tensors, tf_request_pb2
from processors.wire.tensors import TensorError

FORMATS = [tf_request_pb2.ArrayProto, pytorch_predict_pb2.ArrayProto]

ARRAYS: dict[str, np.ndarray[Any, Any]] = {
    "float32": np.array([[1.5, -2.25], [3e-8, 1e30]], np.float32),
    "float64": np.array([0.1, -1e300]),
    "float16": np.array([[0.5, 65504.0]], np.float16),
    "int32": np.array([[-(2**31), 2**31 - 1]], np.int32),
    "int16": np.array([-32768, 32767], np.int16),
    "int8": np.array([-128, 127], np.int8),
    "uint8": np.array([0, 255], np.uint8),
    "uint16": np.array([0, 65535], np.uint16),
    "int64": np.array([-(2**63), 2**63 - 1], np.int64),
    "bool": np.array([[True], [False]]),
    "object": np.array([b"a\x00", b"", "\u00e9".encode()], dtype=object),
    "scalar": np.array(7, np.int64),
    "empty": np.zeros((0, 3), np.float32),
}


@pytest.mark.parametrize("array_type", FORMATS, ids=["tf", "torch"])
@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_round_trip_keeps_dtype_shape_and_bits(array_type: Any, name: str) -> None:
    array = ARRAYS[name]
    proto = tensors.fill(array_type(), array, name)
    back = tensors.to_array(array_type.FromString(proto.SerializeToString()), name)
    assert back.dtype == array.dtype and back.shape == array.shape
    if array.dtype.kind == "f":
        assert back.tobytes() == array.tobytes()
    else:
        np.testing.assert_array_equal(back, array)


def test_bfloat16_travels_in_float_val() -> None:
    import ml_dtypes

    array = np.array([1.5, -3.0, 0.0078125], ml_dtypes.bfloat16)
    proto = tensors.fill(tf_request_pb2.ArrayProto(), array)
    assert proto.dtype == tf_request_pb2.DT_BFLOAT16 and list(proto.float_val) == [
        1.5,
        -3,
        0.0078125,
    ]
    assert tensors.to_array(proto).tobytes() == array.tobytes()


def test_where_each_dtype_travels() -> None:
    proto = tensors.fill(tf_request_pb2.ArrayProto(), np.array([1, 2], np.int8))
    assert proto.dtype == tf_request_pb2.DT_INT8 and list(proto.int_val) == [1, 2]
    proto = tensors.fill(tf_request_pb2.ArrayProto(), np.array([True]))
    assert list(proto.bool_val) == [True]
    proto = tensors.fill(pytorch_predict_pb2.ArrayProto(), np.array([True, False]))
    assert list(proto.int_val) == [1, 0]  # PyTorch's file has no bool_val
    proto = tensors.fill(tf_request_pb2.ArrayProto(), ["x", "yz"])
    assert proto.dtype == tf_request_pb2.DT_STRING and list(proto.string_val) == [b"x", b"yz"]


def test_forced_dtype_and_shape_as_add_feed_gives_them() -> None:
    proto = tensors.fill(
        tf_request_pb2.ArrayProto(), [1, 2, 3, 4], dtype=tf_request_pb2.DT_FLOAT, shape=[2, 2]
    )
    assert list(proto.array_shape.dim) == [2, 2]
    np.testing.assert_array_equal(tensors.to_array(proto), [[1, 2], [3, 4]])
    with pytest.raises(TensorError, match=r"x: shape \[3\] needs 3 values, got 4"):
        tensors.fill(tf_request_pb2.ArrayProto(), [1, 2, 3, 4], "x", dtype=1, shape=[3])
    with pytest.raises(TensorError, match="whole numbers"):
        tensors.fill(tf_request_pb2.ArrayProto(), [1.5], "x", dtype=tf_request_pb2.DT_INT32)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda p: p.array_shape.dim.append(2),
            r"shape \[2, 2\] needs 4 values, float_val holds 2",
        ),
        (lambda p: setattr(p, "dtype", tf_request_pb2.DT_DOUBLE), "double_val holds 0"),
        (
            lambda p: setattr(p, "dtype", tf_request_pb2.DT_COMPLEX64),
            "DT_COMPLEX64 is not supported",
        ),
        (lambda p: setattr(p, "dtype", 99), "dtype 99 is not supported"),
        (lambda p: p.array_shape.dim.__setitem__(0, -2), "negative dimension"),
    ],
)
def test_malformed_tensors_name_the_input(mutate: Any, needle: str) -> None:
    proto = tensors.fill(tf_request_pb2.ArrayProto(), np.array([1.0, 2.0], np.float32))
    mutate(proto)
    with pytest.raises(TensorError, match=f"input 'x': .*{needle}"):
        tensors.to_array(proto, "input 'x'")


@pytest.mark.parametrize(
    ("dtype", "value"), [(tf_request_pb2.DT_UINT8, 256), (tf_request_pb2.DT_INT8, -129)]
)
def test_int_val_outside_the_dtype_is_refused(dtype: Any, value: int) -> None:
    proto = tf_request_pb2.ArrayProto(dtype=dtype, int_val=[value])
    proto.array_shape.dim.append(1)
    with pytest.raises(TensorError, match="outside"):
        tensors.to_array(proto, "v")


def test_numpy_dtypes_without_a_wire_dtype_are_refused() -> None:
    with pytest.raises(TensorError, match="numpy dtype complex64 has no ArrayDataType"):
        tensors.fill(tf_request_pb2.ArrayProto(), np.zeros(2, np.complex64), "z")
    with pytest.raises(TensorError, match="uint64"):
        tensors.fill(tf_request_pb2.ArrayProto(), np.zeros(2, np.uint64), "z")
