"""Tabular models made with the real libraries at run time (no downloads): the heart-disease
PMML, a typed PMML regression, a sparse LR model, and rows as JSON records. The benchmarks
deploy them; the tests check the processors' answers against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows as JSON records (numpy scalars made plain)."""
    return json.loads(frame.to_json(orient="records"))


# --- PMML -------------------------------------------------------------------------------------


def heart_pmml(directory: Path) -> tuple[Path, Any, Any]:
    """The heart-disease example's model as PMML: (file, the fitted pipeline, sample rows)."""
    from examples.heart_disease.data import generate
    from examples.heart_disease.train import fit, frame, save

    matrix, labels = generate(n=1500)
    model = fit(matrix, labels)
    path = save(model, directory / "heart_disease.pmml")
    sample, _ = generate(n=6, seed=11)
    return path, model, frame(sample)


# A PMML regression over one field of each type, written out so every missing-value default
# of SPEC §6 shows in the answer: y = 1 + 2·n + 3·d + (s: "a"→5, ""→7) + (b: true→11, false→13).
TYPED_PMML = """<?xml version="1.0" encoding="UTF-8"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header description="one input of each PMML data type"/>
  <DataDictionary>
    <DataField name="n" optype="continuous" dataType="integer"/>
    <DataField name="d" optype="continuous" dataType="double"/>
    <DataField name="s" optype="categorical" dataType="string">
      <Value value=""/><Value value="a"/>
    </DataField>
    <DataField name="b" optype="categorical" dataType="boolean">
      <Value value="true"/><Value value="false"/>
    </DataField>
    <DataField name="r" optype="continuous" dataType="double"/>
    <DataField name="y" optype="continuous" dataType="double"/>
  </DataDictionary>
  <RegressionModel functionName="regression">
    <MiningSchema>
      <MiningField name="n"/>
      <MiningField name="d"/>
      <MiningField name="s"/>
      <MiningField name="b"/>
      <MiningField name="r" missingValueTreatment="{treatment}"{replacement}/>
      <MiningField name="y" usageType="target"/>
    </MiningSchema>
    <Output>
      <OutputField name="score" optype="continuous" dataType="double" feature="predictedValue"/>
    </Output>
    <RegressionTable intercept="1">
      <NumericPredictor name="n" coefficient="2"/>
      <NumericPredictor name="d" coefficient="3"/>
      <NumericPredictor name="r" coefficient="100"/>
      <CategoricalPredictor name="s" value="a" coefficient="5"/>
      <CategoricalPredictor name="s" value="" coefficient="7"/>
      <CategoricalPredictor name="b" value="true" coefficient="11"/>
      <CategoricalPredictor name="b" value="false" coefficient="13"/>
    </RegressionTable>
  </RegressionModel>
</PMML>
"""


def typed_pmml(path: Path, *, treatment: str = "asValue", replacement: float | None = 0.5) -> Path:
    """The typed regression; field ``r`` has its own missing-value treatment."""
    extra = f' missingValueReplacement="{replacement}"' if replacement is not None else ""
    path.write_text(TYPED_PMML.format(treatment=treatment, replacement=extra))
    return path


# --- sparse LR --------------------------------------------------------------------------------


def sparse_model(
    directory: Path, count: int, seed: int = 3, *, through_text: bool = False
) -> tuple[Path, np.ndarray, float]:
    """A sparse LR model of ``count`` weights over ids 0, 3, 6, …: (directory, dense weights,
    bias). ``through_text`` writes it as a user would: a shuffled text file, converted."""
    from processors.builtin.sparse_lr import BIAS_ID, IDS_FILE, WEIGHTS_FILE, convert

    rng = np.random.default_rng(seed)
    ids = np.arange(count, dtype=np.int64) * 3
    weights = rng.normal(0, 0.5, count)
    bias = -0.25
    path = directory / "model"
    if through_text:
        text = directory / "weights.txt"
        order = rng.permutation(count)  # the converter sorts
        pairs = zip(ids[order].tolist(), weights[order].tolist(), strict=True)
        lines = (f"{i} {w!r}\n" for i, w in pairs)
        with text.open("w") as out:
            out.write(f"bias {bias!r}\n")
            out.writelines(lines)
        convert(text, path)
        text.unlink()
    else:
        path.mkdir()
        np.save(path / IDS_FILE, np.concatenate([[BIAS_ID], ids]))
        np.save(path / WEIGHTS_FILE, np.concatenate([[bias], weights]))
    dense = np.zeros(count * 3)
    dense[ids] = weights
    return path, dense, bias
