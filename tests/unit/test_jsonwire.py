"""The data path's JSON: orjson's speed, the json module's documents."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from processors.wire import jsonwire


def test_reads_what_json_reads_including_what_orjson_refuses() -> None:
    assert jsonwire.loads(b'{"x": [1, 2.5, "a"]}') == {"x": [1, 2.5, "a"]}
    nan = jsonwire.loads(b"[NaN, Infinity]")
    assert math.isnan(nan[0]) and nan[1] == math.inf
    assert jsonwire.loads(b"[18446744073709551615]") == [2**64 - 1]
    assert jsonwire.loads('{"s": "é"}'.encode("utf-16")) == {"s": "é"}


def test_a_malformed_body_gets_jsons_message_with_its_position() -> None:
    with pytest.raises(ValueError, match="line 1 column 7"):
        jsonwire.loads(b'{"x": }')


def test_writes_arrays_compactly_and_as_json_would() -> None:
    document = {"outputs": {"y": np.array([[0.5, -1.25]], dtype=np.float64), "n": np.arange(3)}}
    written = jsonwire.dumps(document)
    assert written == b'{"outputs":{"y":[[0.5,-1.25]],"n":[0,1,2]}}'
    assert json.loads(written) == {"outputs": {"y": [[0.5, -1.25]], "n": [0, 1, 2]}}


def test_float64_numbers_read_back_to_the_same_bits() -> None:
    values = np.random.default_rng(7).standard_normal(200) * 10.0 ** np.arange(-100, 100)
    assert np.array_equal(np.array(json.loads(jsonwire.dumps(values))), values)


def test_non_finite_values_are_written_as_json_writes_them_not_as_null() -> None:
    written = jsonwire.dumps({"y": np.array([1.0, np.nan, np.inf])})
    assert written == b'{"y":[1.0,NaN,Infinity]}'
    assert jsonwire.dumps({"y": None, "s": "null"}) == b'{"y":null,"s":"null"}'


def test_what_orjson_does_not_write_is_written_by_json() -> None:
    strings = np.array([[b"a", "b"]], dtype=object)
    assert json.loads(jsonwire.dumps({"s": strings})) == {"s": [["a", "b"]]}
    strided = np.arange(6, dtype=np.float64).reshape(2, 3)[:, ::2]
    assert json.loads(jsonwire.dumps(strided)) == [[0.0, 2.0], [3.0, 5.0]]
    assert json.loads(jsonwire.dumps({1: np.float32(0.5)})) == {"1": 0.5}
