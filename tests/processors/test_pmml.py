"""The ``pmml`` processor on models exported at test time: the heart-disease example's
scikit-learn pipeline through sklearn2pmml (answers compared with scikit-learn's own
``predict_proba``), and a regression with one input of each PMML type for the missing-value
defaults of SPEC §6."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processors.base import ProcessorLoadError
from tests.processors.contract import Case, call, check_contract, context, load
from tests.processors.tabular_models import (
    checker,
    close,
    heart_pmml,
    probabilities,
    records,
    typed_pmml,
)

pytest.importorskip("jpmml_evaluator", reason="the pmml extra is not installed")


@pytest.fixture(scope="module")
def heart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    return heart_pmml(tmp_path_factory.mktemp("pmml"))


def expected_for(model: Any, frame: Any) -> list[dict[str, float]]:
    return probabilities(model.predict_proba(frame), [0, 1])


def test_heart_disease_pmml_passes_the_contract(heart: tuple[Path, Any, Any]) -> None:
    path, model, frame = heart
    rows = records(frame)
    bad_requests = [
        (b"not json", "the body must be JSON"),
        (b'{"sex": [1]}', "field 'sex'"),
        (json.dumps([{**rows[0], "age": "old"}]).encode(), "field 'age'"),
        (b"[]", "non-empty JSON list"),
        (b"[1, 2]", "record 0"),
    ]
    check_contract(
        Case(
            code="pmml",
            model_entry=str(path),
            request=json.dumps(rows).encode(),
            check=checker(expected_for(model, frame)),
            bad_requests=bad_requests,
        )
    )


def test_one_record_object_is_answered_with_one_object(heart: tuple[Path, Any, Any]) -> None:
    path, model, frame = heart
    processor = load(Case("pmml", str(path), b"", lambda _: None))
    body, status = call(processor, json.dumps(records(frame)[0]).encode())
    assert status == 200
    close(json.loads(body), expected_for(model, frame.iloc[:1])[0])


def test_absent_fields_are_filled_with_zero_like_pai_eas(heart: tuple[Path, Any, Any]) -> None:
    path, model, frame = heart
    processor = load(Case("pmml", str(path), b"", lambda _: None))
    body, status = call(processor, b'[{"sex": 1, "age": 60}, {"age": null}]')
    assert status == 200, body
    filled = frame.iloc[:2].copy()
    filled.loc[:, :] = 0.0
    filled.iloc[0, filled.columns.get_loc("sex")] = 1.0
    filled.iloc[0, filled.columns.get_loc("age")] = 60.0
    close(json.loads(body), expected_for(model, filled))


def test_each_pmml_type_gets_its_default(tmp_path: Path) -> None:
    # r has its own treatment (replacement 0.5); n, d, s, b get 0, 0.0, "", false.
    processor = load(Case("pmml", str(typed_pmml(tmp_path / "typed.pmml")), b"", lambda _: None))
    answer, status = call(processor, b"[{}]")
    assert (json.loads(answer), status) == ([{"score": 1 + 7 + 13 + 100 * 0.5}], 200)
    given = b'[{"n": 1, "d": 0.5, "s": "a", "b": true, "r": 0}]'
    assert json.loads(call(processor, given)[0]) == [{"score": 1 + 2 + 1.5 + 5 + 11}]


def test_a_field_the_model_cannot_default_is_refused_naming_it(tmp_path: Path) -> None:
    path = typed_pmml(tmp_path / "strict.pmml", treatment="returnInvalid", replacement=None)
    check_contract(
        Case(
            code="pmml",
            model_entry=str(path),
            request=b'[{"n": 2, "r": 1}]',
            check=checker([{"score": 1 + 4 + 7 + 13 + 100.0}]),
            bad_requests=[
                (b'[{"n": 2}]', 'Field \\"r\\" cannot accept missing value'),
                (b'[{"n": 1.5, "r": 1}]', 'Field \\"n\\" cannot accept invalid value'),
                (b'[{"s": "zz", "r": 1}]', 'Field \\"s\\" cannot accept invalid value'),
                (b'[{"n": "two", "r": 1}]', "field 'n': expected a number (integer)"),
            ],
        )
    )


def test_a_list_of_values_follows_the_data_dictionary(tmp_path: Path) -> None:
    processor = load(Case("pmml", str(typed_pmml(tmp_path / "t.pmml")), b"", lambda _: None))
    assert json.loads(call(processor, b'[[1, 0.5, "a", true, 0]]')[0]) == [{"score": 20.5}]
    answer, status = call(processor, b"[[1, 0.5]]")
    assert status == 400 and b"needs 5 values in the order n, d, s, b, r" in answer


def test_get_describes_the_model(tmp_path: Path) -> None:
    processor = load(Case("pmml", str(typed_pmml(tmp_path / "t.pmml")), b"", lambda _: None))
    body, status = call(processor, b"", context(method="GET"))
    assert status == 200
    described = json.loads(body)
    assert [f["name"] for f in described["inputs"]] == ["n", "d", "s", "b", "r"]
    assert described["inputs"][2] == {"name": "s", "type": "string", "missing": ""}
    assert described["outputs"] == ["score"]


def test_a_directory_with_one_pmml_file_loads_it(
    heart: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    path, _, _ = heart
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "model.pmml").write_bytes(path.read_bytes())
    (tmp_path / "README.txt").write_text("the model")
    processor = load(Case("pmml", str(tmp_path), b"", lambda _: None))
    assert call(processor, b"[{}]")[1] == 200


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x80\x04\x95joblib pickle bytes", "is not a PMML document"),
        (b"<?xml version='1.0'?><html><body>PMML</body></html>", "is not a valid PMML model"),
        (b"<PMML xmlns='http://www.dmg.org/PMML-4_4' version='4.4'><Header/>", "not a valid PMML"),
    ],
)
def test_a_file_that_is_not_pmml_fails_to_load_naming_it(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "model.pmml"
    path.write_bytes(content)
    with pytest.raises(ProcessorLoadError, match=reason):
        load(Case("pmml", str(path), b"", lambda _: None))


def test_a_package_with_two_pmml_files_asks_for_model_entry(tmp_path: Path) -> None:
    typed_pmml(tmp_path / "a.pmml")
    typed_pmml(tmp_path / "b.pmml")
    with pytest.raises(ProcessorLoadError, match=r"several PMML files \(a.pmml, b.pmml\)"):
        load(Case("pmml", str(tmp_path), b"", lambda _: None))
