"""GPU codes on a machine with a GPU (`pytest -m gpu`): the PyTorch GPU service deployed
through the installation answers what the CPU one answers; the model really sits on CUDA.

Skipped, saying why, where there is no GPU or no CUDA build of PyTorch."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from processors.wire import pytorch_predict_pb2 as pb
from processors.wire import tensors
from tests.processors import tensor_models as models
from tests.processors.contract import Case, call, load
from tests.processors.service import deployed
from tests.support.installation import Installation

torch = pytest.importorskip("torch", reason="the torch extra is not installed")


def _has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    return subprocess.run([smi, "-L"], capture_output=True, timeout=30).returncode == 0


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _has_gpu(), reason="no GPU on this machine (nvidia-smi -L fails)"),
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="this PyTorch is not a CUDA build or sees no GPU"
    ),
]

X = np.random.default_rng(3).normal(size=(16, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models.torch_modules(tmp_path_factory.mktemp("torch_gpu"))


def request(*arrays: np.ndarray) -> bytes:  # type: ignore[type-arg]
    message = pb.PredictRequest()
    for array in arrays:
        tensors.fill(message.inputs.add(), array)
    return message.SerializeToString()


def first_output(body: bytes) -> np.ndarray:  # type: ignore[type-arg]
    return tensors.to_array(pb.PredictResponse.FromString(body).outputs[0])


def test_gpu_processor_places_the_model_on_cuda(modules: dict[str, Path]) -> None:
    gpu = load(Case("pytorch_gpu_1.6", str(modules["mlp"]), b"", lambda _: None))
    assert next(gpu.module.parameters()).is_cuda  # type: ignore[attr-defined]
    cpu = load(Case("pytorch_cpu_1.6", str(modules["mlp"]), b"", lambda _: None))
    got, status = call(gpu, request(X))
    assert status == 200
    np.testing.assert_allclose(first_output(got), first_output(call(cpu, request(X))[0]), atol=1e-5)


def test_deployed_gpu_service_matches_the_cpu_one(
    installation: Installation, unique_name: str, modules: dict[str, Path]
) -> None:
    body = request(X)
    with deployed(
        installation, unique_name + "_cpu", "pytorch_cpu_1.6", modules["mlp"]
    ) as cpu_service:
        on_cpu = cpu_service.post(body)
        assert on_cpu.status_code == 200, on_cpu.text
    with deployed(
        installation,
        unique_name + "_gpu",
        "pytorch_gpu_1.6",
        modules["mlp"],
        metadata={"instance": 1, "cpu": 1, "memory": 4000, "gpu": 1},
    ) as gpu_service:
        for direct in (False, True):
            on_gpu = gpu_service.post(body, direct=direct)
            assert on_gpu.status_code == 200, on_gpu.text
            np.testing.assert_allclose(
                first_output(on_gpu.content), first_output(on_cpu.content), atol=1e-5
            )
