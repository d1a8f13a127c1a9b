"""One run: every workload, every peer and OpenEAS's two paths, one server at a time.

For each server: start it (pinned to CPU 0), wait until it answers the workload's request
right, one 1 s warm-up, then ``runs`` wrk runs of ``duration`` seconds at each concurrency,
and stop it. A server that cannot start or answers wrong becomes a skipped entry with the
reason; the run goes on with the next one.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from bench import openeas, servers
from bench.catalog import PEER_LIST, Batch, Peer, launch
from bench.installation import Installation, running
from bench.load import Request, Row, measure
from bench.tools import PEERS, REPO
from bench.workloads import MLP_LAYERS, WORKLOADS, check, fixed_answer, request
from eas_core.errors import EASError


@dataclass
class Settings:
    workloads: list[str]
    peers: list[str]
    runs: int
    duration: float
    max_requests: int
    batch: Batch
    openeas: bool = True
    lifecycle: bool = True
    cold_starts: int = 5
    switches: int = 10
    mlp_layers: tuple[int, ...] = MLP_LAYERS


@dataclass
class Entry:
    """One server on one workload: its rows by concurrency, or why it was skipped."""

    label: str
    workload: str
    note: str
    rows: dict[int, Row] = field(default_factory=dict)
    skipped: str | None = None
    processes: int | None = None
    batching: bool = False


@dataclass
class Models:
    heart: Path
    mlp: Path
    reference: dict[str, Any]

    @property
    def root(self) -> Path:
        """The directory holding every workload's model."""
        return self.mlp.parents[1]

    def path(self, workload: str) -> Path | None:
        return {"heart": self.heart, "mlp": self.mlp}.get(workload)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_models(work: Path, mlp_layers: tuple[int, ...]) -> Models:
    """The workloads' models, made by bench/models.py in the peers' virtualenv."""
    out = work / "models"
    layers = ",".join(str(width) for width in mlp_layers)
    subprocess.run(
        [str(PEERS.python), "-m", "bench.models", str(out), "--mlp-layers", layers],
        check=True,
        timeout=600,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": str(PEERS.bin)},
        stdout=subprocess.DEVNULL,
    )
    reference = json.loads((out / "reference.json").read_text())
    return Models(out / "heart" / "heart.joblib", out / "mlp" / "mlp.onnx", reference)


def _measure_rows(
    entry: Entry,
    url: str,
    req: Request,
    processes: Sequence[psutil.Process],
    settings: Settings,
    wrk: str,
) -> None:
    workload = WORKLOADS[entry.workload]
    # Warm-up: connections, caches, lazy imports; not recorded.
    measure(
        wrk,
        url,
        req,
        connections=4,
        duration=1,
        max_requests=5000,
        server=processes,
    )
    for connections in workload.concurrency:
        row = Row(connections)
        for index in range(settings.runs):
            _say(f"  {entry.label} c={connections} run {index + 1}/{settings.runs}")
            row.samples.append(
                measure(
                    wrk,
                    url,
                    req,
                    connections=connections,
                    duration=settings.duration,
                    max_requests=settings.max_requests,
                    server=processes,
                )
            )
            time.sleep(0.5)  # let the previous run's connections close
        entry.rows[connections] = row


def run_peer(
    peer: Peer,
    workload: str,
    models: Models,
    settings: Settings,
    wrk: str,
    work: Path,
    batch: Batch | None,
) -> Entry:
    label = peer.label + (" + batching" if batch else "")
    entry = Entry(label, workload, peer.note, batching=batch is not None)
    token = secrets.token_hex(16)
    req = request(workload, peer.dialect, models.reference, token)
    answer = fixed_answer(workload, models.reference)
    place = work / f"{peer.key}-{workload}{'-batch' if batch else ''}"
    place.mkdir(parents=True, exist_ok=True)
    try:
        how = launch(
            peer,
            workload,
            token=token,
            model=models.path(workload),
            answer=answer,
            content_type=req.content_type,
            work=place,
            batch=batch,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        entry.skipped = f"could not prepare {peer.label}: {exc}"
        return entry
    _say(f"{workload}: starting {label}")
    server = servers.start(label, how.command, log=place / "server.log", env=how.env, cwd=REPO)
    try:
        verify: Callable[[bytes], str | None] = lambda body: (  # noqa: E731
            None if peer.key == "nginx" else check(workload, peer.dialect, models.reference, body)
        )
        servers.wait_ready(server, how.url, req, timeout=peer.ready_timeout, check=verify)
        time.sleep(1.0)  # whatever the framework starts after its first answer
        entry.processes = len(server.processes())
        _measure_rows(entry, how.url, req, [server.root], settings, wrk)
    except RuntimeError as exc:
        entry.skipped = str(exc).strip()
        _say(f"{label}: skipped: {entry.skipped[:400]}")
    finally:
        server.stop()
    return entry


@contextmanager
def openeas_installation(work: Path, models: Path | None = None) -> Iterator[Installation]:
    data = work / "openeas" / "data"
    data.mkdir(parents=True, exist_ok=True)
    # Deployments read local paths only under the allowed roots: the models' directory (a
    # temporary one) besides the repository, where the echo demo lives.
    roots = [str(REPO), *([str(models)] if models is not None else [])]
    extra_env = {"EAS_ARTEFACT_LOCAL_ROOTS": json.dumps(roots)}
    with running(data, cpus="0", extra_env=extra_env) as installation:
        yield installation


def run_openeas(
    workload: str, models: Models, settings: Settings, wrk: str, work: Path
) -> list[Entry]:
    """OpenEAS direct and through the gateway, for ``workload`` (the models with and without
    ``rpc.batching``), on an installation started for this workload alone."""
    variants: list[Batch | None] = [None]
    if workload in ("mlp", "heart"):
        variants.append(settings.batch)
    entries: list[Entry] = []
    _say(f"{workload}: starting an OpenEAS installation")
    with openeas_installation(work / workload, models.root) as installation:
        for batch in variants:
            suffix = " + rpc.batching" if batch else ""
            name = f"bench_{workload}" + ("_batch" if batch else "")
            document = openeas.description(workload, name, models.path(workload), batch)
            direct = Entry(
                "OpenEAS direct" + suffix,
                workload,
                "the instance's own port, one hop (a direct-mode SDK's path)",
                batching=batch is not None,
            )
            gateway = Entry(
                "OpenEAS gateway" + suffix,
                workload,
                "gateway → instance, two hops; gateway, controller and instance on CPU 0",
                batching=batch is not None,
            )
            try:
                deployed = openeas.deploy(installation, document)
            except EASError as exc:
                code = document.get("processor") or "python"
                reason = f"the installation refused or failed the `{code}` service: {exc}"
                direct.skipped = gateway.skipped = reason
                _say(f"OpenEAS {workload}{suffix}: skipped: {reason}")
                entries += [direct, gateway]
                continue
            try:
                req = request(workload, "raw", models.reference, deployed.token)
                if workload != "echo":
                    req = Request(req.body, req.expect, "application/json", req.header, req.token)
                for entry, url in ((direct, deployed.direct_url), (gateway, deployed.gateway_url)):
                    reply = servers.answer(url, req)
                    wrong = (
                        f"HTTP {reply.status_code}: {reply.content[:300]!r}"
                        if reply.status_code != 200
                        else check(workload, "raw", models.reference, reply.content)
                    )
                    if wrong:
                        entry.skipped = f"answered wrong at {url}: {wrong}"
                        continue
                    roots = openeas.roots(installation)
                    entry.processes = sum(len(p) for p in installation.parts().values())
                    _measure_rows(entry, url, req, roots, settings, wrk)
            finally:
                openeas.remove(installation, name)
            entries += [direct, gateway]
    return entries


def run_all(settings: Settings, wrk: str) -> tuple[dict[str, list[Entry]], list[openeas.Lifecycle]]:
    """Every workload's entries, and OpenEAS's lifecycle figures (none when not measured)."""
    results: dict[str, list[Entry]] = {}
    lifecycle: list[openeas.Lifecycle] = []
    with tempfile.TemporaryDirectory(prefix="eas-bench-") as tmp:
        work = Path(tmp)
        _say("making the models (bench/models.py)")
        models = make_models(work, settings.mlp_layers)
        for workload in settings.workloads:
            entries: list[Entry] = []
            for peer in PEER_LIST:
                if peer.key not in settings.peers:
                    continue
                entries.append(run_peer(peer, workload, models, settings, wrk, work, None))
                if workload == "mlp" and peer.batching:
                    entries.append(
                        run_peer(peer, workload, models, settings, wrk, work, settings.batch)
                    )
            if settings.openeas:
                entries += run_openeas(workload, models, settings, wrk, work)
            results[workload] = entries
        if settings.lifecycle:
            lifecycle = measure_lifecycle(settings, work)
    return results, lifecycle


def measure_lifecycle(settings: Settings, work: Path) -> list[openeas.Lifecycle]:
    """Cold starts and memory of the echo service, then of a PyTorch model (where the
    project's environment has PyTorch: examples/pytorch/make_model.py makes it)."""
    services: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
        ("echo", lambda name: openeas.description("echo", name, None, None))
    ]
    model = work / "torch" / "model.pt"
    model.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [sys.executable, str(REPO / "examples" / "pytorch" / "make_model.py"), str(model)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if made.returncode == 0:
        services.append(
            ("PyTorch (pytorch_cpu_1.6)", partial(openeas.torch_description, model=model))
        )
    else:
        _say(f"lifecycle: no PyTorch model ({made.stderr.strip().splitlines()[-1:]}); echo only")
    figures: list[openeas.Lifecycle] = []
    for index, (label, describe) in enumerate(services):
        _say(f"lifecycle: cold starts and memory of {label}")
        with openeas_installation(work / f"lifecycle-{index}", model.parent) as installation:
            try:
                measured = openeas.lifecycle(
                    installation,
                    label,
                    describe,
                    cold_starts=settings.cold_starts,
                    switches=settings.switches,
                )
            except EASError as exc:  # the rows measured so far are still written
                _say(f"lifecycle of {label} failed: {exc}")
                continue
            figures.append(measured)
    return figures
