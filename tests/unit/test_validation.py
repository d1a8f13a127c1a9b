"""One formatter of validation errors: every line names the field the way the input spells it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator

from eas_core.errors import InvalidDescription
from eas_core.spec.service import ServiceDescription, parse_description
from eas_core.spec.validation import FieldProblem, field_errors, near_misses

BASE: dict[str, Any] = {
    "name": "svc",
    "processor_type": "python",
    "processor_path": "/p",
    "processor_entry": "app.py",
    "metadata": {"instance": 1},
}


def problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidDescription) as refused:
        parse_description(document)
    return refused.value.errors


def test_description_errors_use_the_wire_spelling_and_leave_union_branches_out() -> None:
    lines = problems({**BASE, "model_config": 5, "metadata": {"instance": 1, "rpc.keepalive": 0}})
    assert lines == [
        "model_config: Input should be a valid string",
        "model_config: Input should be a valid dictionary",
        "metadata.rpc.keepalive: Input should be greater than 0",
    ]


def test_checks_across_fields_name_the_field_they_are_about() -> None:
    assert problems({**BASE, "processor": "pmml"}) == [
        "processor: give either a built-in 'processor' code or a custom 'processor_type', not both"
    ]
    assert problems({k: v for k, v in BASE.items() if k != "processor_entry"}) == [
        "processor_entry: required for a python processor"
    ]


def test_a_missing_field_is_said_to_be_required() -> None:
    assert problems({k: v for k, v in BASE.items() if k != "metadata"}) == ["metadata: required"]


class Step(BaseModel):
    percent: int = Field(ge=1)


class Plan(BaseModel):
    model_config = {"extra": "forbid"}
    steps: list[Step]
    name: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value == "two":
            raise FieldProblem("first", "is wrong", ("second", "is wrong too"))
        return value


def errors(document: dict[str, Any], **options: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Plan.model_validate(document)
    return field_errors(caught.value, **options)


def test_list_positions_are_in_brackets_and_unknown_fields_named() -> None:
    assert errors({"steps": [{"percent": 1}, {"percent": 0}], "stepz": 1}) == [
        "steps[1].percent: Input should be greater than or equal to 1",
        "stepz: unknown field",
    ]


def test_a_validator_reports_each_sub_field_it_checked() -> None:
    assert errors({"steps": [], "name": "two"}) == [
        "name.first: is wrong",
        "name.second: is wrong too",
    ]


def test_the_input_as_a_whole_is_named_by_the_root() -> None:
    with pytest.raises(ValidationError) as caught:
        Step.model_validate("not an object")
    assert field_errors(caught.value, root="body") == [
        "body: Input should be a valid dictionary or instance of Step"
    ]


def test_where_a_request_value_came_from_is_not_part_of_its_name() -> None:
    fastapi_errors = [
        {
            "type": "int_parsing",
            "loc": ("path", "version"),
            "msg": "Input should be a valid integer",
        },
        {"type": "missing", "loc": ("body",), "msg": "Field required"},
    ]
    assert field_errors(fastapi_errors, root="body", locations=("body", "path")) == [
        "version: Input should be a valid integer",
        "body: required",
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"name": "a", "processor": "pmml", "metdata": {"instance": 1}},
            ["metdata: unknown field — did you mean metadata?"],
        ),
        (
            {"name": "a", "processor": "pmml", "metadata": {"instance": 1, "rpc.keepaliv": 9}},
            ["metadata.rpc.keepaliv: unknown field — did you mean rpc.keepalive?"],
        ),
        # Keys of other platforms' descriptions that resemble no field of ours are kept.
        ({"name": "a", "metadata": {"instance": 1}, "processor_params": 1, "cloud": {}}, []),
    ],
)
def test_a_near_miss_of_a_field_name_is_named_with_the_field_meant(
    document: dict[str, Any], expected: list[str]
) -> None:
    assert near_misses(document, ServiceDescription) == expected


def test_a_description_with_a_typo_is_refused_with_the_suggestion() -> None:
    with pytest.raises(InvalidDescription) as refused:
        parse_description({"name": "a", "processor": "pmml", "metdata": {"instance": 1}})
    assert refused.value.message == "metdata: unknown field — did you mean metadata?"
