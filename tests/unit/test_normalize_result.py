"""What a processor returns becomes one HTTP answer (processors.base.normalize_result)."""

from __future__ import annotations

import pytest

from processors.base import normalize_result


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (b"data", (b"data", 200)),
        ("text", (b"text", 200)),
        ((b"data", 0), (b"data", 200)),
        ((bytearray(b"x"), 418), (b"x", 418)),
        ((None, 204), (b"", 204)),
        ((b"", 304), (b"", 304)),
        ((b"x", 1000), (b"x", 400)),
    ],
)
def test_results_processors_return_in_practice(result: object, expected: tuple[bytes, int]) -> None:
    assert normalize_result(result) == expected


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_informational_status_becomes_500_naming_it(status: int) -> None:
    body, answered = normalize_result((b"data", status))
    assert answered == 500
    assert f"status {status}" in body.decode()


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_status_with_a_body_becomes_500_naming_it(status: int) -> None:
    body, answered = normalize_result((b"data", status))
    assert answered == 500
    assert f"status {status} with a 4-byte body" in body.decode()
