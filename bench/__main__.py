"""`python -m bench`: every workload with every peer and OpenEAS, in one run, into one file.

    python -m bench                          # the full run: 3 × 10 s per row → results/peers.md
    python -m bench --quick                  # smoke check: 1 × 3 s per row → results/quick.md
    python -m bench --workloads echo --peers nginx,fastapi --runs 1 --duration 5
    python -m bench --note "loaded machine, for shape only"

Installs what is missing first (wrk and nginx from Debian as root, the peers' virtualenvs
from bench/requirements-*.txt), makes the models, then measures one server at a time.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.catalog import PEER_LIST, Batch
from bench.report import render
from bench.run import Settings, run_all
from bench.tools import MLSERVER, PEERS, REPO, ensure_debian, ensure_venv, tool_version, versions
from bench.workloads import MLP_LAYERS, WORKLOADS, mlp_layers

RESULTS = REPO / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="echo,heart,mlp")
    parser.add_argument(
        "--peers", default=",".join(p.key for p in PEER_LIST), help="peers to run (all)"
    )
    parser.add_argument("--no-openeas", action="store_true", help="leave OpenEAS's rows out")
    parser.add_argument("--no-lifecycle", action="store_true", help="no cold start / memory")
    parser.add_argument("--runs", type=int, default=3, help="runs per row (median)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="answers per run")
    parser.add_argument("--quick", action="store_true", help="1 × 3 s per row, short lifecycle")
    parser.add_argument(
        "--mlp-layers",
        type=mlp_layers,
        default=MLP_LAYERS,
        help="the mlp workload's widths, input first (default 64,1024,1024,10)",
    )
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-batch-timeout-ms", type=float, default=50.0)
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--output", type=Path, help="results file (default results/peers.md)")
    parser.add_argument("--note", default="", help="a remark printed atop the results")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration = 1, 3.0
        args.cold_starts, args.switches = 2, 2
    args.workload_list = [w.strip() for w in args.workloads.split(",") if w.strip()]
    args.peer_list = [p.strip() for p in args.peers.split(",") if p.strip()]
    known = {p.key for p in PEER_LIST}
    if unknown := [w for w in args.workload_list if w not in WORKLOADS]:
        parser.error(f"--workloads: no {', '.join(unknown)} (have: {', '.join(WORKLOADS)})")
    if unknown := [p for p in args.peer_list if p not in known]:
        parser.error(f"--peers: no {', '.join(unknown)} (have: {', '.join(sorted(known))})")
    if not 1 <= args.runs <= 20:
        parser.error("--runs: 1 to 20")
    if not 1 <= args.duration <= 120:
        parser.error("--duration: 1 to 120 seconds")
    if not 1000 <= args.max_requests <= 50_000_000:
        parser.error("--max-requests: 1000 to 50000000")
    if not 1 <= args.cold_starts <= 20 or not 0 <= args.switches <= 50:
        parser.error("--cold-starts: 1 to 20; --switches: 0 to 50")
    if args.max_batch_size < 2 or not 0 <= args.max_batch_timeout_ms <= 1000:
        parser.error("--max-batch-size: at least 2; --max-batch-timeout-ms: 0 to 1000")
    if args.output is None:
        args.output = RESULTS / ("quick.md" if args.quick else "peers.md")
    return args


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{psutil.cpu_count()} CPUs ({cpu}), {memory:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def before() -> str:
    """How busy the machine was just before the runs (the load average lags a minute)."""
    shares = psutil.cpu_percent(interval=1.0, percpu=True)
    load = " ".join(f"{x:.2f}" for x in psutil.getloadavg())
    return f"CPU busy per core over 1 s: {' / '.join(f'{s:.0f}%' for s in shares)}; load {load}"


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    tools = ensure_debian("wrk", "nginx")
    ensure_venv(PEERS)
    if "mlserver" in args.peer_list:
        ensure_venv(MLSERVER)
    peer_versions = versions(
        PEERS, ["uvloop", "httptools", "fastapi", "uvicorn", "litserve", "ray", "bentoml"]
    )
    peer_versions |= versions(PEERS, ["scikit-learn", "onnxruntime", "pandas", "numpy"])
    if "mlserver" in args.peer_list:
        peer_versions["mlserver"] = versions(MLSERVER, ["mlserver"])["mlserver"]
    # The OpenEAS rows load the same model files with the project's own libraries.
    own = []
    for package in ("scikit-learn", "onnxruntime", "pandas"):
        try:
            own.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            own.append(f"{package} not installed")
    context = {
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "before": before(),
        "note": args.note,
        "versions": f"OpenEAS {commit()}; {tool_version([tools['wrk'], '-v'])}; "
        f"{tool_version([tools['nginx'], '-v'])}; "
        + ", ".join(f"{k} {v}" for k, v in peer_versions.items())
        + f"; the project's environment (OpenEAS's processors): {', '.join(own)}",
    }
    settings = Settings(
        workloads=args.workload_list,
        peers=args.peer_list,
        runs=args.runs,
        duration=args.duration,
        max_requests=args.max_requests,
        batch=Batch(args.max_batch_size, args.max_batch_timeout_ms),
        openeas=not args.no_openeas,
        lifecycle=not args.no_lifecycle,
        cold_starts=args.cold_starts,
        switches=args.switches,
        mlp_layers=args.mlp_layers,
    )
    started = time.monotonic()
    results, lifecycle = run_all(settings, tools["wrk"])
    text = render(results, lifecycle, settings, context)
    text += f"\nThe whole run took {(time.monotonic() - started) / 60:.0f} minutes.\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
