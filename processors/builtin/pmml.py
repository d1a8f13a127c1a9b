"""The ``pmml`` processor (SPEC §6): a PMML model scored with JPMML.

JPMML (jpmml-evaluator) runs in a JVM inside the instance process, started through JPype
when the model loads (after the runtime forks its worker processes, so each worker has its
own). It was chosen over PyPMML, which speaks to a JVM child process over a socket, by
measurement: four to nine times the records per second at one and at eight threads, for the
same memory (bench/results/pmml-engines.md).

Request: a JSON list of records whose keys are the model's input (``DataDictionary``)
fields, ``[{"sex": 0, "cp": 1, "fbs": 1}, …]``. Answer: one object per record holding the
model's output fields (its target fields when it declares no outputs), e.g.
``[{"p_0": 0.9963996241581827, "p_1": 0.0036003758418172898}]``.

A field that is absent (or null) and has no missing-value treatment in the model is filled
as PAI-EAS fills it: boolean ``false``, double/float ``0.0``, integer ``0``, string ``""``.
A field the model treats explicitly (``missingValueReplacement``, ``missingValueTreatment``)
is handed over missing, and the model decides — ``returnInvalid`` answers 400 naming it.
Records are scored one at a time (JPMML's evaluator is thread-safe: requests run
concurrently on the worker threads); ``GET`` answers the model's fields.
"""

from __future__ import annotations

import json
from typing import Any

from processors.base import ProcessorLoadError
from processors.builtin.tabular import InputError, RecordsProcessor, find_model_file

SUFFIXES = (".pmml", ".xml")
# PAI-EAS's fill for a missing field without a treatment in the model, by PMML dataType.
DEFAULTS: dict[str, Any] = {
    "boolean": False,
    "double": 0.0,
    "float": 0.0,
    "integer": 0,
    "string": "",
}
NUMERIC = {"double": float, "float": float, "integer": int}


class PMMLProcessor(RecordsProcessor):
    def load(self, model_entry: str, model_config: str) -> None:
        path = find_model_file(model_entry, SUFFIXES, "PMML")
        head = path.read_bytes()[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head.startswith(b"<") or b"PMML" not in head:
            raise ProcessorLoadError(f"{path.name} is not a PMML document (no <PMML> element)")
        try:
            from jpmml_evaluator import JavaError, make_evaluator
        except ImportError as exc:
            raise ProcessorLoadError(
                f"the pmml processor needs jpmml-evaluator ({exc}): pip install 'openeas[pmml]'"
            ) from None
        self._java_error = JavaError
        try:
            self.evaluator = make_evaluator(str(path), backend="jpype").verify()
        except Exception as exc:  # JavaError, or a Java exception JPype raised as it is
            raise ProcessorLoadError(
                f"{path.name} is not a valid PMML model: {_short(exc)}"
            ) from None
        # Each input: (name, dataType, fill when missing or None when the model decides).
        self.inputs: list[tuple[str, str, Any]] = []
        for field in self.evaluator.getInputFields():
            mining = field.javaModelField.getMiningField()
            treated = mining is not None and (
                mining.getMissingValueReplacement() is not None
                or mining.getMissingValueTreatment() is not None
            )
            fill = None if treated else DEFAULTS.get(field.getDataType())
            self.inputs.append((field.getName(), field.getDataType(), fill))
        # A list of values (instead of a record) follows the DataDictionary's order.
        dictionary = self.evaluator.javaEvaluator.getPMML().getDataDictionary().getDataFields()
        order = {str(f.getName()): i for i, f in enumerate(dictionary)}
        self.inputs.sort(key=lambda item: order.get(item[0], len(order)))
        self.outputs = [f.getName() for f in self.evaluator.getOutputFields()]
        self.targets = [f.getName() for f in self.evaluator.getTargetFields()]
        self.answer_fields = self.outputs or self.targets

    def row(self, record: dict[str, Any] | list[Any], index: int) -> dict[str, Any]:
        if isinstance(record, list):
            if len(record) != len(self.inputs):
                raise InputError(
                    f"record {index}: a list of values needs {len(self.inputs)} values in the "
                    f"order {', '.join(n for n, _, _ in self.inputs)}; got {len(record)}"
                )
            record = {name: value for (name, _, _), value in zip(self.inputs, record, strict=True)}
        arguments: dict[str, Any] = {}
        for name, data_type, fill in self.inputs:
            value = record.get(name)
            if value is None:
                arguments[name] = fill
                continue
            arguments[name] = _checked(value, data_type, f"record {index}: field {name!r}")
        return arguments

    def score(self, rows: list[Any]) -> list[Any]:
        answers = []
        for index, arguments in enumerate(rows):
            try:
                results = self.evaluator.evaluate(arguments)
            except self._java_error as exc:
                raise InputError(f"record {index}: {exc.message}") from None
            answers.append({name: _plain(results.get(name)) for name in self.answer_fields})
        return answers

    def describe(self) -> dict[str, Any]:
        return {
            "inputs": [
                {"name": name, "type": data_type, "missing": fill}
                for name, data_type, fill in self.inputs
            ],
            "outputs": self.answer_fields,
        }


def _checked(value: Any, data_type: str, where: str) -> Any:
    """Refuse what no PMML field can take (lists, objects) and text a numeric field cannot
    parse, naming the field; the engine checks the rest against the model's domain."""
    if isinstance(value, list | dict):
        raise InputError(f"{where}: expected a {data_type} value, got {json.dumps(value)[:40]}")
    convert = NUMERIC.get(data_type)
    if convert is not None and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            raise InputError(
                f"{where}: expected a number ({data_type}), got {json.dumps(value)[:40]}"
            ) from None
    return value


def _short(exc: BaseException) -> str:
    """A parser's complaint without the list of every element it would have accepted."""
    text = str(exc).split(". Expected elements are", 1)[0]
    return text if len(text) <= 300 else text[:300] + " …"


def _plain(value: Any) -> Any:
    """JPMML's result values as JSON values (classification results arrive as plain values)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
