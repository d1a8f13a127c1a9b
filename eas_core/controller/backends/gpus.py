"""The GPUs of this machine, found through NVML (the `gpu` extra: ``nvidia-ml-py``).

A node's GPUs are detected, not declared: their count, model and memory. Instances get whole
GPUs by index (``CUDA_VISIBLE_DEVICES``); what each uses is read per process
(``nvmlDeviceGetComputeRunningProcesses``: memory by pid) and per device (utilisation).
Where there is no NVML library, no driver or no GPU, every answer is "none": a CPU machine
has 0 GPUs, not an error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

from eas_core.config import MiB

log = logging.getLogger(__name__)
_lock = threading.Lock()


@dataclass(frozen=True)
class Gpu:
    index: int
    model: str
    memory_mb: int


@dataclass(frozen=True)
class GpuUse:
    """What one process uses of one GPU."""

    index: int
    memory_mb: int
    utilisation: int  # percent of the whole device (NVML reports utilisation per device)


def _nvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


@contextmanager
def _session() -> Iterator[ModuleType | None]:
    """NVML initialised for the block, or None where there is none to initialise."""
    nvml = _nvml()
    if nvml is None:
        yield None
        return
    with _lock:
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:  # no driver: a machine without NVIDIA GPUs
            log.debug("NVML unavailable: %s", exc)
            yield None
            return
        try:
            yield nvml
        finally:
            nvml.nvmlShutdown()


def detect() -> list[Gpu]:
    """This machine's GPUs; an empty list where there are none (or no NVML)."""
    with _session() as nvml:
        if nvml is None:
            return []
        found = []
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                found.append(
                    Gpu(
                        index=index,
                        model=name.decode() if isinstance(name, bytes) else str(name),
                        memory_mb=int(memory.total // MiB),
                    )
                )
        except nvml.NVMLError as exc:
            log.warning("reading the GPUs through NVML failed: %s", exc)
            return []
        return found


def usage(pids: set[int]) -> dict[int, list[GpuUse]]:
    """For each of ``pids`` running on a GPU: its memory on each device and that device's
    utilisation. Processes on no GPU are absent."""
    found: dict[int, list[GpuUse]] = {}
    with _session() as nvml:
        if nvml is None or not pids:
            return found
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                busy = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if process.pid in pids:
                        used = int((process.usedGpuMemory or 0) // MiB)
                        found.setdefault(process.pid, []).append(GpuUse(index, used, busy))
        except nvml.NVMLError as exc:
            log.warning("reading GPU use through NVML failed: %s", exc)
            return {}
    return found


def labels(gpus: list[Gpu]) -> dict[str, str]:
    """A node's GPU labels: model and memory (the first GPU's; a node is one kind)."""
    if not gpus:
        return {}
    return {"gpu_model": gpus[0].model, "gpu_memory_mb": str(gpus[0].memory_mb)}
