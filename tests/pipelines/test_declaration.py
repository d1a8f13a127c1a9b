"""Declarations: validation errors name the field as the file spells it; the factory turns a
directory of declaration files into Dagster definitions (adding a pipeline = adding a file)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from eas_pipelines.declaration import (
    DeclarationError,
    find_declarations,
    load_declaration,
    load_declarations,
    parse_declaration,
)
from eas_pipelines.factory import build_definitions, load_definitions
from tests.pipelines.conftest import EXAMPLE

EXAMPLE_FILE = EXAMPLE / "pipeline.yaml"


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_FILE.read_text())  # type: ignore[no-any-return]


def blue_green(steps: list[int]) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.update(rollout={"strategy": "blue_green", "steps": steps})


def set_path(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    return change


CASES: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (blue_green([10, 5, 100]), "rollout.steps[1]: must be greater than the previous step (10)"),
    (blue_green([10, 50]), "rollout.steps[1]: the last step must be 100"),
    (blue_green([0, 100]), "rollout.steps[0]: Input should be greater than or equal to 1"),
    (set_path("rollout.steps", [50, 100]), "rollout.steps: only blue_green rollouts take steps"),
    (set_path("rollout.stepz", [1]), "rollout.stepz: unknown field"),
    (set_path("rollout", "sideways"), "rollout.strategy: Input should be 'all_at_once'"),
    (set_path("store", {"kind": "s3"}), "store.kind: expected one of installation, local, oss"),
    (set_path("store", {"kind": "local"}), "store.path: required"),
    (set_path("store", {"kind": "oss", "bucket": "b", "endpint": "x"}), "store.endpint: unknown"),
    (set_path("service.name", "Bad-Name"), "service.name: must start with a lowercase letter"),
    # The core's rule, not a looser copy of it: a name the control API would refuse fails
    # when the file is loaded.
    (set_path("service.name", "a" * 64), "service.name: must start with a lowercase letter"),
    (set_path("service.model_path", "/m"), "service.model_path: set by the pipeline"),
    (set_path("service.metadata", {}), "service.metadata.instance: required"),
    (set_path("train", "train.py"), "train: 'train.py': expected 'module:function'"),
    (set_path("schedule.cron", "every 2 hours"), "schedule.cron: 'every 2 hours' is not a cron"),
    (set_path("schedule.timezone", "Mars/Olympus"), "schedule.timezone: unknown timezone"),
    (
        set_path("smoke_tests.requests.1.expect.json_path.0.path", "p_1"),
        "smoke_tests.requests[1].expect.json_path[0].path: 'p_1': a JSON path starts with '$'",
    ),
    (set_path("smoke_tests.requests", []), "smoke_tests.requests: List should have at least 1"),
    (set_path("smoke_tests.max_error_rate", 2), "smoke_tests.max_error_rate: Input should be"),
    (
        set_path("store", {"kind": "installation"}),
        "sensors.new_model: the installation store cannot be listed",
    ),
    (set_path("sensors.run_failure", {"webhook": "ftp://x"}), "sensors.run_failure.webhook: must"),
]


@pytest.mark.parametrize(("change", "expected"), CASES)
def test_an_invalid_declaration_is_an_error_naming_the_field(
    change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    document = copy.deepcopy(example())
    change(document)
    with pytest.raises(DeclarationError) as caught:
        parse_declaration(document, source="pipeline.yaml")
    assert any(line.startswith(expected) for line in caught.value.errors), caught.value.errors
    assert str(caught.value).startswith("pipeline.yaml: invalid pipeline declaration")


def test_a_file_that_is_not_yaml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text("service: [unclosed\n")
    with pytest.raises(DeclarationError, match=r"pipeline\.yaml: invalid pipeline declaration"):
        load_declaration(path)


def test_the_example_declares_the_heart_disease_pipeline() -> None:
    declaration = load_declaration(EXAMPLE_FILE)
    assert declaration.name == "heart_disease"
    assert declaration.schedule is not None and declaration.schedule.cron == "0 */2 * * *"
    assert declaration.train == "examples.heart_disease.train:train"
    assert declaration.service["processor"] == "pmml"  # built in: no processor code to ship
    assert "processor_path" not in declaration.service
    assert find_declarations(EXAMPLE.parent) == [EXAMPLE_FILE]


def test_the_default_code_location_loads_the_example_pipeline() -> None:
    from eas_pipelines.definitions import defs

    repository = defs.get_repository_def()
    jobs = {job.name for job in repository.get_all_jobs()}
    assert {
        "heart_disease_retrain_and_deploy",
        "heart_disease_deploy",
        "heart_disease_rollback",
        "heart_disease_release",
    } <= jobs
    assert repository.get_schedule_def("heart_disease_schedule").cron_schedule == "0 */2 * * *"
    assert {s.name for s in repository.sensor_defs} == {
        "heart_disease_new_model",
        "heart_disease_health",
    }
    keys = defs.resolve_all_asset_keys()
    assert dg.AssetKey(["heart_disease", "model"]) in keys
    assert dg.AssetKey(["heart_disease", "deployment"]) in keys
    checks = defs.resolve_asset_graph().asset_check_keys
    assert dg.AssetCheckKey(dg.AssetKey(["heart_disease", "deployment"]), "smoke") in checks


def test_adding_a_declaration_file_adds_a_pipeline(tmp_path: Path) -> None:
    def write(path: Path, name: str) -> None:
        document = example()
        document["service"]["name"] = name
        document["sensors"]["run_failure"] = {"webhook": "http://127.0.0.1:9/hook"}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))

    write(tmp_path / "one" / "pipeline.yaml", "one")
    assert [d.name for d in load_declarations(tmp_path)] == ["one"]
    write(tmp_path / "two.pipeline.yaml", "two")
    write(tmp_path / "notes.yaml", "ignored")  # not a declaration file name

    defs = load_definitions(tmp_path)
    dg.Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.get_repository_def().get_all_jobs()}
    assert {"one_deploy", "two_deploy", "two_rollback"} <= jobs
    assert "ignored_deploy" not in jobs
    sensors = {s.name for s in defs.get_repository_def().sensor_defs}
    assert {"one_run_failure", "two_run_failure", "two_new_model"} <= sensors


def test_two_declarations_of_one_service_are_an_error(tmp_path: Path) -> None:
    for name in ("a.pipeline.yaml", "b.pipeline.yaml"):
        (tmp_path / name).write_text(EXAMPLE_FILE.read_text())
    with pytest.raises(DeclarationError, match="'heart_disease' is already declared"):
        load_declarations(tmp_path)


def test_relative_paths_are_relative_to_the_declaring_file(tmp_path: Path) -> None:
    declaration = parse_declaration(example(), base_dir=tmp_path)
    assert declaration.resolve("models") == tmp_path / "models"
    assert declaration.resolve("/abs/models") == Path("/abs/models")
    defs = build_definitions([declaration])
    assert defs.resolve_job_def("heart_disease_deploy").tags == {"eas/service": "heart_disease"}
