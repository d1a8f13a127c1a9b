"""Tensor requests for TensorFlow and PyTorch services, with eas_prediction's names.

    request = TFRequest("predict_images")
    request.add_feed("images", [1, 784], TFRequest.DT_FLOAT, pixels)
    request.add_fetch("scores")
    response = client.predict(request)            # a TFResponse
    response.get_tensor_shape("scores"), response.get_values("scores")

Beyond the official SDK: numpy in and out (``add_feed_array``, ``get_array``), every dtype
of the wire format (half, bfloat16, uint16 …) and current protobuf. The bytes on the wire are
the official ones (tf_request.proto, pytorch_predict.proto), so either SDK calls either
server. ``TorchRequest`` does not offer the official ``flag`` (snappy-compressed bodies).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from processors.wire import pytorch_predict_pb2 as torch_pb
from processors.wire import tensors
from processors.wire import tf_request_pb2 as tf_pb

_VALUE_FIELD = {
    tensors.DT_FLOAT: "float_val",
    tensors.DT_HALF: "float_val",
    tensors.DT_BFLOAT16: "float_val",
    tensors.DT_DOUBLE: "double_val",
    tensors.DT_INT64: "int64_val",
    tensors.DT_STRING: "string_val",
    tensors.DT_BOOL: "bool_val",
}


def _values(proto: Any) -> Any:
    """The repeated field holding ``proto``'s values, as eas_prediction's get_values gives it."""
    field = _VALUE_FIELD.get(proto.dtype, "int_val")
    if field not in proto.DESCRIPTOR.fields_by_name:
        field = "int_val"  # booleans in PyTorch's format
    return getattr(proto, field)


class _DataTypes:
    DT_FLOAT = tensors.DT_FLOAT
    DT_DOUBLE = tensors.DT_DOUBLE
    DT_HALF = tensors.DT_HALF
    DT_BFLOAT16 = tensors.DT_BFLOAT16
    DT_INT8 = tensors.DT_INT8
    DT_INT16 = tensors.DT_INT16
    DT_INT32 = tensors.DT_INT32
    DT_INT64 = tensors.DT_INT64
    DT_UINT8 = tensors.DT_UINT8
    DT_UINT16 = tensors.DT_UINT16
    DT_QINT8 = tensors.DT_QINT8
    DT_QUINT8 = tensors.DT_QUINT8
    DT_QINT16 = tensors.DT_QINT16
    DT_QUINT16 = tensors.DT_QUINT16
    DT_QINT32 = tensors.DT_QINT32
    DT_STRING = tensors.DT_STRING
    DT_BOOL = tensors.DT_BOOL


class TFRequest(_DataTypes):
    """A PredictRequest for a TensorFlow (or ONNX) service."""

    def __init__(self, signature_name: str | None = None) -> None:
        self.request_data = tf_pb.PredictRequest()
        self.signature_name = signature_name or ""
        self.request_data.signature_name = self.signature_name

    def set_signature_name(self, signature_name: str) -> None:
        self.signature_name = signature_name
        self.request_data.signature_name = signature_name

    def add_feed(
        self, input_name: str, shape: Sequence[int], content_type: int, content: Iterable[Any]
    ) -> None:
        """Feed ``input_name``: its shape, wire dtype and values flattened to one dimension."""
        values = content if isinstance(content, np.ndarray) else list(content)
        tensors.fill(
            self.request_data.inputs[input_name],
            values,
            f"input {input_name!r}",
            dtype=content_type,
            shape=shape,
        )

    def add_feed_array(self, input_name: str, array: Any) -> None:
        """Feed ``input_name`` with a numpy array (or nested lists); its dtype picks the wire's."""
        tensors.fill(self.request_data.inputs[input_name], array, f"input {input_name!r}")

    def add_fetch(self, output_name: str) -> None:
        """Ask for this output only (call once per output; none asked means all)."""
        self.request_data.output_filter.append(output_name)

    def to_string(self) -> bytes:
        return self.request_data.SerializeToString()

    def parse_response(self, response_data: bytes) -> TFResponse:
        return TFResponse(response_data)

    def __str__(self) -> str:
        return str(self.request_data)


class TFResponse:
    def __init__(self, response_data: bytes = b"") -> None:
        self.response = tf_pb.PredictResponse()
        self.response.ParseFromString(response_data)

    def _output(self, output_name: str) -> Any:
        if output_name not in self.response.outputs:
            raise KeyError(
                f"no output {output_name!r} in the response (it has "
                f"{', '.join(sorted(self.response.outputs)) or 'none'})"
            )
        return self.response.outputs[output_name]

    def get_tensor_shape(self, output_name: str) -> list[int]:
        return list(self._output(output_name).array_shape.dim)

    def get_values(self, output_name: str) -> Any:
        """The output's values flattened to one dimension (the wire's repeated field)."""
        return _values(self._output(output_name))

    def get_array(self, output_name: str) -> np.ndarray[Any, Any]:
        """The output as a numpy array of its shape and dtype."""
        return tensors.to_array(self._output(output_name), f"output {output_name!r}")

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        return {name: self.get_array(name) for name in sorted(self.response.outputs)}

    def to_string(self) -> str:
        return str(self.response)

    def __str__(self) -> str:
        return self.to_string()


class TorchRequest(_DataTypes):
    """A PredictRequest for a PyTorch service: positional and named inputs."""

    def __init__(self) -> None:
        self.request_data = torch_pb.PredictRequest()

    def set_debug_level(self, debug_level: int = 0) -> None:
        self.request_data.debug_level = debug_level

    def _slot(self, index: int) -> Any:
        while len(self.request_data.inputs) <= index:
            self.request_data.inputs.add()
        return self.request_data.inputs[index]

    def add_feed(
        self, index: int, shape: Sequence[int], content_type: int, content: Iterable[Any]
    ) -> None:
        """Feed the ``index``-th argument of the model's forward."""
        values = content if isinstance(content, np.ndarray) else list(content)
        tensors.fill(self._slot(index), values, f"input {index}", dtype=content_type, shape=shape)

    def add_feed_map(
        self, name: str, shape: Sequence[int], content_type: int, content: Iterable[Any]
    ) -> None:
        """Feed a named input (``map_inputs``)."""
        values = content if isinstance(content, np.ndarray) else list(content)
        tensors.fill(
            self.request_data.map_inputs[name],
            values,
            f"map_inputs {name!r}",
            dtype=content_type,
            shape=shape,
        )

    def add_feed_array(self, index: int, array: Any) -> None:
        tensors.fill(self._slot(index), array, f"input {index}")

    def add_feed_map_array(self, name: str, array: Any) -> None:
        tensors.fill(self.request_data.map_inputs[name], array, f"map_inputs {name!r}")

    def add_fetch(self, output_index: int) -> None:
        self.request_data.output_filter.append(output_index)

    def to_string(self) -> bytes:
        return self.request_data.SerializeToString()

    def parse_response(self, response_data: bytes) -> TorchResponse:
        return TorchResponse(response_data)

    def __str__(self) -> str:
        return str(self.request_data)


class TorchResponse:
    def __init__(self, response_data: bytes = b"") -> None:
        self.response = torch_pb.PredictResponse()
        self.response.ParseFromString(response_data)

    def _output(self, index: int) -> Any:
        count = len(self.response.outputs)
        if not 0 <= index < count:
            raise IndexError(f"output {index} is not in the response (it has {count})")
        return self.response.outputs[index]

    def _named(self, name: str) -> Any:
        if name not in self.response.map_outputs:
            raise KeyError(
                f"no map output {name!r} in the response (it has "
                f"{', '.join(sorted(self.response.map_outputs)) or 'none'})"
            )
        return self.response.map_outputs[name]

    def get_tensor_shape(self, output_index: int) -> list[int]:
        return list(self._output(output_index).array_shape.dim)

    def get_values(self, output_index: int) -> Any:
        return _values(self._output(output_index))

    def get_tensor_shape_map(self, name: str) -> list[int]:
        return list(self._named(name).array_shape.dim)

    def get_values_map(self, name: str) -> Any:
        return _values(self._named(name))

    def get_array(self, output_index: int) -> np.ndarray[Any, Any]:
        return tensors.to_array(self._output(output_index), f"output {output_index}")

    def get_array_map(self, name: str) -> np.ndarray[Any, Any]:
        return tensors.to_array(self._named(name), f"map_outputs {name!r}")

    def to_string(self) -> str:
        return str(self.response)

    def __str__(self) -> str:
        return self.to_string()
