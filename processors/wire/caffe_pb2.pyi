from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArrayShape(_message.Message):
    __slots__ = ("dim",)
    DIM_FIELD_NUMBER: _ClassVar[int]
    dim: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dim: _Optional[_Iterable[int]] = ...) -> None: ...

class ArrayProto(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: ArrayShape
    data: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, shape: _Optional[_Union[ArrayShape, _Mapping]] = ..., data: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("input_name", "input_data", "output_filter")
    INPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_DATA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILTER_FIELD_NUMBER: _ClassVar[int]
    input_name: _containers.RepeatedScalarFieldContainer[str]
    input_data: _containers.RepeatedCompositeFieldContainer[ArrayProto]
    output_filter: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, input_name: _Optional[_Iterable[str]] = ..., input_data: _Optional[_Iterable[_Union[ArrayProto, _Mapping]]] = ..., output_filter: _Optional[_Iterable[str]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("output_name", "output_data")
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DATA_FIELD_NUMBER: _ClassVar[int]
    output_name: _containers.RepeatedScalarFieldContainer[str]
    output_data: _containers.RepeatedCompositeFieldContainer[ArrayProto]
    def __init__(self, output_name: _Optional[_Iterable[str]] = ..., output_data: _Optional[_Iterable[_Union[ArrayProto, _Mapping]]] = ...) -> None: ...
