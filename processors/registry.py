"""Processor codes → implementations, as ``"module:Class"`` strings imported only when chosen.

The core never imports a framework it is not serving: a code is resolved in the instance
process that serves it. The controller refuses a code not listed here with the list of the
codes this installation serves, and a GPU code where no node has a GPU
(:func:`requires_gpu`).
"""

from __future__ import annotations

import importlib
import importlib.util

from processors.base import Processor

BUILTIN: dict[str, str] = {
    # Tabular models: JSON records in, JSON out (processors/builtin/tabular.py).
    "pmml": "processors.builtin.pmml:PMMLProcessor",
    "sklearn": "processors.builtin.scikit_learn:SklearnProcessor",
    "xgboost": "processors.builtin.boosters:XGBoostProcessor",
    "lightgbm": "processors.builtin.boosters:LightGBMProcessor",
    "parameter_sever": "processors.builtin.sparse_lr:SparseLRProcessor",  # PAI-EAS's spelling
    "parameter_server": "processors.builtin.sparse_lr:SparseLRProcessor",
}

# The Python modules each code needs beyond the core, and the extra that installs them: the
# controller checks they are importable (without importing them) before it creates a service.
REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "pmml": (("jpmml_evaluator", "jpype"), "pmml"),
    "sklearn": (("sklearn", "joblib"), "sklearn"),
    "xgboost": (("xgboost", "joblib"), "xgboost"),
    "lightgbm": (("lightgbm", "joblib"), "lightgbm"),
    "parameter_sever": (("numpy",), "parameter_server"),
    "parameter_server": (("numpy",), "parameter_server"),
}

# PAI-EAS codes this installation does not serve: named as such when a description uses one.
NOT_SERVED = (
    "alink_pai_processor",
    "xnn_cpu",
    "easy_vision_cpu_tf1.12_torch151",
    "easy_vision_gpu_tf1.12_torch151",
    "easy_nlp_cpu_tf1.12",
    "easy_nlp_gpu_tf1.12",
    "blade_cpu",
    "blade_cuda10.0_beta",
    "mediaflow",
)
# GPU codes whose name does not say "_gpu".
GPU_CODES = ("blade_cuda10.0_beta", "mediaflow")

# Tensor processors. The version in a code is the PAI-EAS one a description names; each is
# served by the framework release this installation has (SPEC §6).
for _version in ("1.12", "1.14", "1.15"):
    BUILTIN[f"tensorflow_cpu_{_version}"] = "processors.builtin.tensorflow:TensorFlowProcessor"
    BUILTIN[f"tensorflow_gpu_{_version}"] = "processors.builtin.tensorflow:TensorFlowGPUProcessor"
BUILTIN["pytorch_cpu_1.6"] = "processors.builtin.pytorch:PyTorchProcessor"
BUILTIN["pytorch_gpu_1.6"] = "processors.builtin.pytorch:PyTorchGPUProcessor"
BUILTIN["onnx"] = "processors.builtin.onnx:ONNXProcessor"
BUILTIN["onnx_cpu"] = "processors.builtin.onnx:ONNXProcessor"
BUILTIN["onnx_gpu"] = "processors.builtin.onnx:ONNXGPUProcessor"
BUILTIN["caffe_cpu"] = "processors.builtin.caffe:CaffeProcessor"
BUILTIN["caffe_gpu"] = "processors.builtin.caffe:CaffeGPUProcessor"
for _code, _target in BUILTIN.items():
    if _code.startswith("tensorflow_"):
        REQUIREMENTS[_code] = (("tensorflow",), "tensorflow")
    elif _code.startswith("pytorch_"):
        REQUIREMENTS[_code] = (("torch",), "torch")
    elif _code.startswith("onnx"):
        REQUIREMENTS[_code] = (("onnxruntime",), "onnx")
    elif _code.startswith("caffe_"):
        REQUIREMENTS[_code] = (("cv2",), "caffe")

CUSTOM_TYPES_SUPPORTED = ("python", "cpp", "java")


def custom_refusal(kind: str) -> str | None:
    """Why this installation cannot run a ``processor_type`` of ``kind``, or None."""
    if kind not in CUSTOM_TYPES_SUPPORTED:
        return (
            f"processor_type: {kind!r} processors are not supported by "
            f"this installation (supported: {', '.join(CUSTOM_TYPES_SUPPORTED)})"
        )
    if kind == "java" and importlib.util.find_spec("jpype") is None:
        return (
            "processor_type: 'java' needs JPype1, which this installation lacks "
            "(pip install 'openeas[java]')"
        )
    return None


def available_codes() -> list[str]:
    return sorted(BUILTIN)


def requires_gpu(code: str) -> bool:
    """True for the codes that run on a GPU (``*_gpu_*``, ``caffe_gpu``, ``mediaflow``, …)."""
    return "_gpu" in code or code in GPU_CODES


def refusal(code: str) -> str | None:
    """Why a description may not name ``code`` on this installation, or None when it may."""
    supported = ", ".join(available_codes()) or "none"
    if code in NOT_SERVED or code.startswith(("easy_vision_", "easy_nlp_", "blade_")):
        return (
            f"processor: {code!r} is a PAI-EAS processor this installation does not provide "
            f"(supported: {supported}; or use processor_type)"
        )
    if code not in BUILTIN:
        return (
            f"processor: unknown processor code {code!r} "
            f"(supported: {supported}; or use processor_type)"
        )
    modules, extra = REQUIREMENTS.get(code, ((), ""))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        return (
            f"processor: {code!r} needs {', '.join(missing)}, which this installation lacks "
            f"(pip install 'openeas[{extra}]')"
        )
    return None


def create(code: str) -> Processor:
    try:
        target = BUILTIN[code]
    except KeyError:
        raise KeyError(f"unknown processor code {code!r}") from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    processor: Processor = cls()
    return processor
