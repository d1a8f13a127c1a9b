"""The operating-system processes of local instances: found by their environment, signalled
as a group.

Every instance process carries ``EAS_INSTANCE_ID`` and ``EAS_INSTANCE_DIR`` (its directory
under ``<data_dir>/instances/``) in its environment, and so do the worker processes it forks.
Both must match for a process to count as an instance of *this* installation: several
installations may run on one machine, and a process id may be reused by anything.

Each instance leads its own session (and process group), so a kill reaches its worker
processes and whatever its processor started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def instance_of(process: psutil.Process, root: Path) -> str | None:
    """The id of the instance of the installation whose instances live in ``root`` (resolved)
    that ``process`` runs, or None."""
    try:
        env = process.environ()
    except psutil.Error:  # gone, a zombie, or another user's
        return None
    instance_id = env.get("EAS_INSTANCE_ID")
    directory = env.get("EAS_INSTANCE_DIR")
    if not instance_id or not directory:
        return None
    if Path(directory).resolve() != root / instance_id:
        return None
    return instance_id


def is_instance_process(pid: int, instance_id: str, root: Path) -> bool:
    """Is ``pid`` alive (not a zombie) and that instance (not a reused pid)?"""
    try:
        process = psutil.Process(pid)
        if process.status() in _GONE:
            return False
    except psutil.Error:
        return False
    return instance_of(process, root) == instance_id


def running_instances(root: Path) -> dict[str, list[psutil.Process]]:
    """Every live process of an instance of this installation, by instance id."""
    found: dict[str, list[psutil.Process]] = {}
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            if process.status() in _GONE:
                continue
        except psutil.Error:
            continue
        instance_id = instance_of(process, root)
        if instance_id is not None:
            found.setdefault(instance_id, []).append(process)
    return found


def leaders(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The processes started as the instance (not forked by another one of the list)."""
    pids = {p.pid for p in processes}
    top = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.ppid() not in pids:
                top.append(process)
    return top


def started_at(process: psutil.Process) -> float | None:
    try:
        return process.create_time()
    except psutil.Error:
        return None


def kill_group(pid: int) -> None:
    """SIGKILL ``pid`` and, when it leads its process group, the whole group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def stop(processes: list[psutil.Process], *, grace: float) -> None:
    """SIGTERM, then SIGKILL whatever still runs after ``grace`` seconds."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)
