"""A GPU machine's end-to-end check: NVML detection, a PyTorch model on a GPU, what it uses.

    python -m bench.gpu_check            # from the repository root; needs no network

Needs an NVIDIA GPU with its driver, and Python with this project, torch (a CUDA build) and
nvidia-ml-py installed. It starts an installation with the local backend on free loopback
ports in a temporary directory, deploys a tiny TorchScript model on the built-in PyTorch
GPU processor with ``gpu: 1``, calls it through the gateway, and prints what NVML detects,
the node the control API reports, ``eascmd w`` and the instance's GPU memory and the device's
utilisation (NVML process accounting). Exits non-zero, saying what failed, on any failure.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

from eas_core.controller.backends import gpus
from eas_core.sdk.requests import TorchRequest
from tests.support.installation import start_installation, wait_for

SERVICE = "gpu_check"


def make_model(path: Path) -> None:
    import torch

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = torch.nn.Linear(4, 8)
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=1)

    torch.manual_seed(0)
    torch.jit.script(MLP().eval()).save(str(path))


def fail(why: str) -> None:
    print(f"FAILED: {why}", flush=True)
    sys.exit(1)


def main() -> None:
    found = gpus.detect()
    print(f"NVML detects {len(found)} GPU(s): {[vars(g) for g in found]}", flush=True)
    if not found:
        fail("NVML finds no GPU (is the NVIDIA driver there, and nvidia-ml-py installed?)")
    with tempfile.TemporaryDirectory(prefix="eas-gpu-check-") as tmp:
        root = Path(tmp)
        model = root / "model.pt"
        make_model(model)
        data_dir = root / "data"
        data_dir.mkdir()
        # Points every second, so the GPU series show within the check.
        installation = start_installation(data_dir, extra_env={"EAS_METRICS_INTERVAL": "1"})
        try:
            check(installation, model, len(found))
        finally:
            installation.stop()
            print(f"server log: {(root / 'data-server.out').read_text()[-3000:]}")


def check(installation: object, model: Path, count: int) -> None:
    from tests.support.installation import Installation

    assert isinstance(installation, Installation)
    nodes = installation.eascmd_json("resource", "li", "public")
    print(f"control API nodes: {json.dumps(nodes)}", flush=True)
    if sum(n["gpu"] for n in nodes) != count:
        fail(f"the public group reports {[n['gpu'] for n in nodes]} GPUs, NVML {count}")
    client = installation.client
    client.create_service(
        {
            "name": SERVICE,
            "processor": "pytorch_gpu_1.6",
            "model_path": str(model),
            "metadata": {"instance": 1, "cpu": 1, "memory": 2000, "gpu": 1},
        }
    )

    def running() -> bool:
        return any(i.status == "Running" for i in client.list_instances(SERVICE))

    try:
        wait_for(running, timeout=300, interval=1, what="the GPU instance to be Running")
    except AssertionError as exc:
        print(installation.eascmd("w", SERVICE, check=False).stdout)
        print(client.logs(SERVICE).model_dump_json(indent=1))
        fail(str(exc))
    token = client.describe_service(SERVICE).access_token
    request = TorchRequest()
    request.add_feed(0, [1, 4], TorchRequest.DT_FLOAT, [1.0, 2.0, 3.0, 4.0])
    started = time.monotonic()
    for _ in range(200):  # enough calls that the device shows some use
        answer = installation.predict(SERVICE, request.to_string(), token=token)
        if answer.status_code != 200:
            fail(f"predict answered {answer.status_code}: {answer.text[:500]}")
    print(f"200 calls in {time.monotonic() - started:.2f} s", flush=True)
    print(f"last answer ({len(answer.content)} bytes): {answer.content[:200]!r}", flush=True)
    print(installation.eascmd("w", SERVICE).stdout, flush=True)
    nodes = installation.eascmd_json("resource", "li", "public")
    print(f"nodes after deploy: {json.dumps(nodes)}", flush=True)
    if sum(n["used_gpu"] for n in nodes) != 1:
        fail(f"the node reports {[n['used_gpu'] for n in nodes]} GPUs used, expected 1")
    tree = {p.pid for p in psutil.Process(installation.process.pid).children(recursive=True)}
    tree |= {p.pid for p in psutil.process_iter() if _instance_of(p) == SERVICE}
    use = gpus.usage(tree)
    print(f"NVML per-process use: {{pid: [(gpu, MB, util%)]}} {use}", flush=True)
    if not use:
        fail("NVML shows no process of the installation on a GPU")

    def gpu_series() -> dict[str, list[tuple[float, float]]] | None:
        for _ in range(20):  # keep the device busy while the collector looks
            installation.predict(SERVICE, request.to_string(), token=token)
        found = client.metrics(SERVICE, metrics=["gpu_memory_mb", "gpu_util"], since="5m")
        series = {s.metric: s.points for s in found.series if s.instance is None and s.points}
        return series if "gpu_memory_mb" in series else None

    try:
        series = wait_for(gpu_series, timeout=60, interval=1, what="GPU series in the metrics")
    except AssertionError as exc:
        fail(str(exc))
    print(
        f"metrics API, the service's GPU series (last points): "
        f"{ {m: p[-3:] for m, p in series.items()} }",
        flush=True,
    )
    if series["gpu_memory_mb"][-1][1] <= 0:
        fail("the metrics API reports no GPU memory held by the GPU service")
    print("OK", flush=True)


def _instance_of(process: psutil.Process) -> str | None:
    try:
        instance = process.environ().get("EAS_INSTANCE_ID", "")
    except psutil.Error:
        return None
    return SERVICE if instance.startswith(f"{SERVICE}-") else None


if __name__ == "__main__":
    main()
