"""What the benchmark needs beside the project: wrk and nginx (Debian packages) and the peers'
virtualenvs, installed when missing so that one command does the whole run.

The peers never enter the project's environment: each virtualenv is made from its pinned
requirements file (``bench/requirements-*.txt``) and remade when that file changes (its
hash is kept in the virtualenv).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
APT_TIMEOUT = 900
PIP_TIMEOUT = 1800


@dataclass(frozen=True)
class Venv:
    name: str
    path: Path
    requirements: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.path / "bin"


PEERS = Venv("peers", REPO / ".venv-bench", BENCH / "requirements-peers.txt")
MLSERVER = Venv("mlserver", REPO / ".venv-bench-mlserver", BENCH / "requirements-mlserver.txt")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_debian(*binaries: str) -> dict[str, str]:
    """Each binary from PATH (or /usr/sbin), installing its Debian package when missing:
    ``apt-get update`` then ``apt-get install -y``, as root only."""
    found = {b: shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin") for b in binaries}
    missing = [b for b, path in found.items() if path is None]
    if missing:
        if os.geteuid() != 0:
            raise SystemExit(
                f"{', '.join(missing)} not installed and this is not root: "
                f"run `apt-get install -y {' '.join(missing)}` first"
            )
        lock = ["-o", "DPkg::Lock::Timeout=300"]
        for step in (
            ["apt-get", *lock, "update", "-qq"],
            ["apt-get", *lock, "install", "-y", "-qq", *missing],
        ):
            _say(f"installing: {shlex.join(step)}")
            done = subprocess.run(step, capture_output=True, text=True, timeout=APT_TIMEOUT)
            if done.returncode != 0:
                raise SystemExit(
                    f"`{shlex.join(step)}` exited {done.returncode}:\n"
                    f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )
        found = {b: shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin") for b in binaries}
    still = [b for b, path in found.items() if path is None]
    if still:
        raise SystemExit(f"{', '.join(still)} still not found after installing")
    return {b: str(path) for b, path in found.items()}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_venv(venv: Venv) -> Venv:
    """The virtualenv with exactly its requirements file installed; made or remade here."""
    stamp = venv.path / ".requirements.sha256"
    want = _digest(venv.requirements)
    if venv.python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return venv
    _say(f"making the {venv.name} virtualenv {venv.path} from {venv.requirements.name}")
    # The interpreter the virtualenv is made from: the base Python under this one, so that
    # nothing of the project's environment leaks in.
    base = Path(getattr(sys, "_base_executable", sys.executable))
    if venv.path.exists():
        shutil.rmtree(venv.path)
    steps = [
        [str(base), "-m", "venv", str(venv.path)],
        [
            str(venv.python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
            str(venv.requirements),
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        if done.returncode != 0:
            raise SystemExit(
                f"`{shlex.join(step)}` exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
    stamp.write_text(want + "\n")
    return venv


def versions(venv: Venv, packages: list[str]) -> dict[str, str]:
    """Installed versions of ``packages`` in ``venv`` (as pip names them)."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        out[name] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(venv.python), "-c", script, *packages], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        return {p: "unknown" for p in packages}
    import json

    result: dict[str, str] = json.loads(done.stdout)
    return result


def tool_version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].split(" Copyright")[0].strip() if text else "unknown"
