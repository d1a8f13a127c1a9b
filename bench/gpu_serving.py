"""The built-in PyTorch processor on a GPU: cold start, latency and server-side batching.

    python -m bench.gpu_serving --output bench/results/gpu-serving.md

Needs an NVIDIA GPU and a CUDA build of PyTorch; exits 2, saying why, where there is none.
On an installation of its own (temp dir, unpinned), one TorchScript MLP (1024 → 4096 → 4096 →
1000, float32, made here) is deployed three ways — ``pytorch_cpu_1.6``, ``pytorch_gpu_1.6``
and ``pytorch_gpu_1.6`` with ``rpc.batching`` — and each is measured direct to its instance
with the service token: cold start (create → Running), p50/p99 of sequential one-row
calls, and throughput at ``--concurrency`` threads of keep-alive clients for a bounded
number of requests. Answers are checked against the model run here on the CPU. The GPU as
NVML and the metrics API report it is printed alongside.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.installation import running
from processors.wire import pytorch_predict_pb2 as pb
from processors.wire import tensors

BENCH = Path(__file__).resolve().parent


def has_gpu() -> str:
    """'' where a CUDA GPU is usable, else why not."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi is not installed"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "this PyTorch sees no CUDA GPU"
    return ""


def make_model(root: Path) -> Path:
    import torch

    torch.manual_seed(7)
    model = torch.nn.Sequential(
        torch.nn.Linear(1024, 4096),
        torch.nn.ReLU(),
        torch.nn.Linear(4096, 4096),
        torch.nn.ReLU(),
        torch.nn.Linear(4096, 1000),
    ).eval()
    path = root / "mlp.pt"
    torch.jit.script(model).save(str(path))
    return path


def request_body(row: np.ndarray[Any, Any]) -> bytes:
    message = pb.PredictRequest()
    tensors.fill(message.inputs.add(), row)
    return message.SerializeToString()


def answer(body: bytes) -> np.ndarray[Any, Any]:
    return tensors.to_array(pb.PredictResponse.FromString(body).outputs[0])


def sequential(url: str, token: str, body: bytes, count: int) -> tuple[float, float]:
    """p50 and p99 in ms of ``count`` sequential calls on one keep-alive connection."""
    times = []
    with httpx.Client(headers={"Authorization": token}, timeout=60) as client:
        for _ in range(10):
            client.post(url, content=body).raise_for_status()
        for _ in range(count):
            start = time.perf_counter()
            client.post(url, content=body).raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def _load_process(
    url: str, token: str, body: bytes, threads: int, calls: int, barrier: Any
) -> tuple[int, float]:
    """One load process: ``threads`` keep-alive clients, ``calls`` calls each, started
    together with the other processes; its failures and elapsed seconds."""
    failures = 0
    lock = threading.Lock()
    inner = threading.Barrier(threads + 1)

    def worker() -> None:
        nonlocal failures
        with httpx.Client(headers={"Authorization": token}, timeout=120) as client:
            client.post(url, content=body)
            inner.wait(timeout=120)
            for _ in range(calls):
                if client.post(url, content=body).status_code != 200:
                    with lock:
                        failures += 1

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        barrier.wait(timeout=120)
        inner.wait(timeout=120)
        start = time.perf_counter()
        for future in futures:
            future.result()
        return failures, time.perf_counter() - start


def concurrent(
    url: str, token: str, body: bytes, concurrency: int, total: int, processes: int
) -> tuple[float, int]:
    """Requests per second of ``total`` calls from ``concurrency`` keep-alive clients spread
    over ``processes`` load processes (one Python process alone would be the bottleneck),
    and how many failed."""
    threads = max(1, concurrency // processes)
    calls = max(1, total // (threads * processes))
    with multiprocessing.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ProcessPoolExecutor(processes) as pool:
            futures = [
                pool.submit(_load_process, url, token, body, threads, calls, barrier)
                for _ in range(processes)
            ]
            results = [future.result() for future in futures]
    elapsed = max(seconds for _, seconds in results)
    return calls * threads * processes / elapsed, sum(failed for failed, _ in results)


def nvidia_smi() -> str:
    query = "name,memory.total,memory.used,utilization.gpu,driver_version"
    result = subprocess.run(
        ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.strip() or result.stderr.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "gpu-serving.md")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=6400)
    parser.add_argument("--load-processes", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-batch-timeout-ms", type=int, default=5)
    args = parser.parse_args()
    why_not = has_gpu()
    if why_not:
        print(f"no GPU benchmark: {why_not}", file=sys.stderr)
        return 2
    import torch

    rows: list[str] = []
    facts: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_model(root)
        x = np.random.default_rng(1).normal(size=(1, 1024)).astype(np.float32)
        reference = torch.jit.load(str(model))(torch.from_numpy(x)).detach().numpy()
        body = request_body(x)
        (root / "data").mkdir()
        env = {"EAS_NODE_GPU": "1", "EAS_NODE_CPU": "16", "EAS_NODE_MEMORY_MB": "65536"}
        env["EAS_ARTEFACT_LOCAL_ROOTS"] = json.dumps([str(root)])
        with running(root / "data", cpus=None, extra_env=env) as installation:
            client = installation.client
            variants: list[tuple[str, str, dict[str, Any]]] = [
                ("pytorch_cpu_1.6", "cpu", {}),
                ("pytorch_gpu_1.6", "gpu", {"gpu": 1}),
                (
                    "pytorch_gpu_1.6",
                    "gpu_batched",
                    {
                        "gpu": 1,
                        "rpc.batching": True,
                        "rpc.max_batch_size": args.max_batch_size,
                        "rpc.max_batch_timeout": args.max_batch_timeout_ms,
                    },
                ),
            ]
            for processor, label, extra in variants:
                name = f"bench_{label}"
                metadata = {"instance": 1, "cpu": 4, "memory": 8000, **extra}
                started = time.perf_counter()
                client.create_service(
                    {
                        "name": name,
                        "processor": processor,
                        "model_path": str(model),
                        "metadata": metadata,
                    }
                )
                client.wait_until_running(name, timeout=300)
                cold = time.perf_counter() - started
                token = client.describe_service(name).access_token
                instance = client.list_instances(name)[0]
                url = f"http://{instance.ip}:{instance.port}/api/predict/{name}"
                with httpx.Client(headers={"Authorization": token}, timeout=60) as one:
                    got = one.post(url, content=body)
                    got.raise_for_status()
                np.testing.assert_allclose(answer(got.content), reference, rtol=1e-3, atol=1e-4)
                p50, p99 = sequential(url, token, body, args.sequential)
                rps, failures = concurrent(
                    url, token, body, args.concurrency, args.requests, args.load_processes
                )
                facts.append(f"after {label}: {nvidia_smi()}")
                rows.append(
                    f"| {label} | {processor} | {cold:.2f} | {p50:.2f} | {p99:.2f} | "
                    f"{rps:,.0f} | {failures} |"
                )
                print(rows[-1], flush=True)
                client.delete_service(name)
                client.wait_until_deleted(name, timeout=120)
    table = [
        "| service | processor | cold start s | p50 ms c=1 | p99 ms c=1 | "
        f"req/s c={args.concurrency} | failed |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    text = "\n".join(
        [
            "# The PyTorch processor on a GPU",
            "",
            f"`python -m bench.gpu_serving` — {datetime.date.today()}, {platform.node()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"GPU: {torch.cuda.get_device_name(0)}.",
            f"MLP 1024→4096→4096→1000 float32, one row per request, direct to the instance; "
            f"{args.requests} requests from {args.concurrency} clients in "
            f"{args.load_processes} processes; batching: "
            f"max_batch_size {args.max_batch_size}, max_batch_timeout "
            f"{args.max_batch_timeout_ms} ms.",
            "",
            *table,
            "",
            *(f"- {fact}" for fact in facts),
            "",
        ]
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
