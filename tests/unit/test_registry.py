"""The processor registry's shared behaviour: which codes a description may name here, which
codes need a GPU, and that naming a code imports nothing until an instance serves it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from processors import registry


@pytest.mark.parametrize(
    "code",
    [
        "alink_pai_processor",
        "xnn_cpu",
        "easy_vision_cpu_tf1.12_torch151",
        "easy_nlp_gpu_tf1.12",
        "blade_cpu",
        "blade_cuda10.0_beta",
        "mediaflow",
    ],
)
def test_pai_eas_codes_not_served_here_are_refused_with_the_supported_list(code: str) -> None:
    reason = registry.refusal(code)
    assert reason is not None
    assert reason.startswith(f"processor: {code!r} is a PAI-EAS processor")
    assert f"supported: {', '.join(registry.available_codes())}" in reason


def test_an_unknown_code_is_refused_naming_it() -> None:
    reason = registry.refusal("no_such_processor")
    assert reason is not None and "unknown processor code 'no_such_processor'" in reason


def test_a_code_whose_framework_is_missing_says_which_extra_installs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "lightgbm" else real(name, *a),
    )
    assert registry.refusal("lightgbm") == (
        "processor: 'lightgbm' needs lightgbm, which this installation lacks "
        "(pip install 'openeas[lightgbm]')"
    )


@pytest.mark.parametrize(
    ("code", "gpu"),
    [
        ("tensorflow_gpu_1.15", True),
        ("pytorch_gpu_1.6", True),
        ("caffe_gpu", True),
        ("easy_vision_gpu_tf1.12_torch151", True),
        ("blade_cuda10.0_beta", True),
        ("mediaflow", True),
        ("tensorflow_cpu_1.15", False),
        ("caffe_cpu", False),
        ("pmml", False),
        ("parameter_sever", False),
    ],
)
def test_requires_gpu(code: str, gpu: bool) -> None:
    assert registry.requires_gpu(code) is gpu


def test_both_parameter_server_spellings_are_one_processor() -> None:
    assert registry.BUILTIN["parameter_sever"] == registry.BUILTIN["parameter_server"]


def test_the_registry_imports_no_framework() -> None:
    probe = (
        "import sys; from processors import registry; "
        "[registry.refusal(c) for c in registry.available_codes()]; "
        "print(sorted(m for m in ('sklearn', 'xgboost', 'lightgbm', 'jpype', 'numpy') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def test_every_built_in_code_names_the_modules_and_extra_it_needs() -> None:
    # A code whose framework is missing must be refused at create, not fail at instance start.
    assert set(registry.REQUIREMENTS) == set(registry.BUILTIN)
    for modules, extra in registry.REQUIREMENTS.values():
        assert modules and extra
