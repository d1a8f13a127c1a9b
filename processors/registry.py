"""Processor codes → implementations, as ``"module:Class"`` strings imported only when chosen.

The core never imports a framework it is not serving: a code is resolved in the instance
process that serves it. Built-in codes join this table as their processors land; the
controller refuses any code not listed here, naming it.
"""

from __future__ import annotations

import importlib

from processors.base import Processor

BUILTIN: dict[str, str] = {}

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

CUSTOM_TYPES_SUPPORTED = ("python",)


def is_known(code: str) -> bool:
    return code in BUILTIN


def available_codes() -> list[str]:
    return sorted(BUILTIN)


def create(code: str) -> Processor:
    try:
        target = BUILTIN[code]
    except KeyError:
        raise KeyError(f"unknown processor code {code!r}") from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    processor: Processor = cls()
    return processor
