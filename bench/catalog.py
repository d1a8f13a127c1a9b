"""The peers: who they are, which workloads they serve, and the command that starts each.

Every peer runs as one server (one worker process where the framework has that knob) pinned
to CPU 0 by :mod:`bench.servers`. The Python peers run from the peers' virtualenvs
(:mod:`bench.tools`), never the project's, with the repository on ``PYTHONPATH`` so that
they share :mod:`bench.peers.scoring`.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.installation import free_port
from bench.peers import nginx
from bench.tools import MLSERVER, PEERS, REPO, Venv


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    dialect: str  # see bench.workloads
    venv: Venv | None
    batching: bool  # the framework batches on the server side
    note: str
    packages: tuple[str, ...] = ()
    ready_timeout: float = 90.0


@dataclass
class Launch:
    command: list[str]
    url: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    size: int = 16  # OpenEAS's rpc.max_batch_size default
    timeout_ms: float = 50.0  # and its rpc.max_batch_timeout


PEER_LIST = [
    Peer(
        "nginx",
        "nginx (static)",
        "raw",
        None,
        False,
        "the ceiling: one worker, token checked with `if`, `return 200` with the fixed answer "
        "(no echo: `$request_body` is only filled where nginx proxies the body)",
    ),
    Peer(
        "bare",
        "uvloop + httptools",
        "raw",
        PEERS,
        False,
        "calibration: bench/peers/bare.py, the answer written from the parser's callback on "
        "one uvloop loop, no framework",
        ("uvloop", "httptools"),
    ),
    Peer(
        "fastapi",
        "FastAPI (uvicorn)",
        "raw",
        PEERS,
        False,
        "bench/peers/fastapi_echo.py, one uvicorn worker (uvloop, httptools)",
        ("fastapi", "uvicorn"),
    ),
    Peer(
        "litserve",
        "LitServe",
        "litserve",
        PEERS,
        True,
        "bench/peers/litserve_peer.py: one API server process and one inference worker; "
        "JSON in and out; token in `X-API-Key` (LIT_SERVER_API_KEY, its own check); "
        "batching: max_batch_size/batch_timeout",
        ("litserve",),
        120.0,
    ),
    Peer(
        "ray",
        "Ray Serve",
        "raw",
        PEERS,
        True,
        "bench/peers/ray_peer.py: a one-CPU local Ray, the Serve proxy and one replica; raw "
        "body from the Starlette request; batching: @serve.batch",
        ("ray",),
        180.0,
    ),
    Peer(
        "bentoml",
        "BentoML",
        "bentoml",
        PEERS,
        True,
        "bench/peers/bentoml_peer.py: `bentoml serve`, workers=1; named JSON fields; token "
        "checked from the request context; batching: batchable=True (adaptive)",
        ("bentoml",),
        120.0,
    ),
    Peer(
        "mlserver",
        "MLServer",
        "v2",
        MLSERVER,
        True,
        "bench/peers/mlserver_peer.py: a custom runtime on the V2 REST endpoint, "
        "parallel_workers 1 (its default); token from `parameters.headers`; batching: "
        "adaptive (max_batch_size/max_batch_time)",
        ("mlserver",),
        120.0,
    ),
]
PEERS_BY_KEY = {p.key: p for p in PEER_LIST}


# One core per server: numeric libraries' thread pools (OpenBLAS busy-waits) would only fight
# over it. OpenEAS's installation gets the same (bench/installation.py).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _env(peer: Peer) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **ONE_THREAD}
    if peer.venv is not None:
        env["PATH"] = os.pathsep.join([str(peer.venv.bin), os.environ.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(peer.venv.path)
    return env


def launch(
    peer: Peer,
    workload: str,
    *,
    token: str,
    model: Path | None,
    answer: bytes,
    content_type: str,
    work: Path,
    batch: Batch | None,
) -> Launch:
    """How to start ``peer`` for ``workload`` (``batch``: with server-side batching)."""
    port = free_port()
    env = _env(peer)
    model_args = ["--model", str(model)] if model is not None else []
    batch_args = (
        ["--max-batch-size", str(batch.size), "--max-batch-timeout-ms", f"{batch.timeout_ms:g}"]
        if batch is not None
        else []
    )
    common = ["--port", str(port), "--token", token, "--workload", workload, *model_args]
    if peer.key == "nginx":
        conf = nginx.config(work / "nginx", port, token, answer, content_type)
        return Launch(nginx.command(conf), f"http://127.0.0.1:{port}/api/predict/bench", env)
    assert peer.venv is not None
    python = str(peer.venv.python)
    if peer.key in ("bare", "fastapi", "ray", "litserve"):
        module = {
            "bare": "bench.peers.bare",
            "fastapi": "bench.peers.fastapi_echo",
            "ray": "bench.peers.ray_peer",
            "litserve": "bench.peers.litserve_peer",
        }[peer.key]
        path = "/predict" if peer.key == "litserve" else "/api/predict/bench"
        args = common + (batch_args if peer.key in ("ray", "litserve") else [])
        if peer.key == "litserve":
            env["LIT_SERVER_API_KEY"] = token  # LitServe's own check, read at its import
        return Launch([python, "-m", module, *args], f"http://127.0.0.1:{port}{path}", env)
    if peer.key == "bentoml":
        env.update(
            {
                "BENCH_TOKEN": token,
                "BENCH_WORKLOAD": workload,
                "BENCH_MODEL": str(model or ""),
                "BENCH_MAX_BATCH_SIZE": str(batch.size if batch else 0),
                "BENCH_MAX_BATCH_TIMEOUT_MS": f"{batch.timeout_ms:g}" if batch else "0",
                "BENTOML_DO_NOT_TRACK": "True",
            }
        )
        service = {"echo": "Echo", "heart": "Heart", "mlp": "MLP"}[workload]
        if batch is not None:
            service = "BatchedMLP"
        command = [
            str(peer.venv.bin / "bentoml"),
            "serve",
            f"bench.peers.bentoml_peer:{service}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        route = {"echo": "echo", "heart": "predict", "mlp": "predict"}[workload]
        return Launch(command, f"http://127.0.0.1:{port}/{route}", env)
    if peer.key == "mlserver":
        directory = work / "mlserver"
        ports = f"{port},{free_port()},{free_port()}"
        subprocess.run(
            [
                *(python, "-m", "bench.peers.mlserver_peer", str(directory), "--ports", ports),
                *("--token", token, "--workload", workload, *model_args, *batch_args),
            ],
            env={**os.environ, **env},
            check=True,
            timeout=120,
            cwd=REPO,
        )
        command = [str(peer.venv.bin / "mlserver"), "start", str(directory)]
        return Launch(command, f"http://127.0.0.1:{port}/v2/models/bench/infer", env)
    raise ValueError(f"peer: no {peer.key!r}")
