"""The controller's metrics collection: every ``metrics_interval`` seconds, scrape each
instance's and the gateway's Prometheus text, turn counters into per-second points (per
instance and per service), add the CPU and memory of each instance's process tree — and,
on a machine whose GPUs NVML finds, the GPU memory its processes hold and the utilisation of
the devices they run on — and store them; average them into the coarse tier and prune what
is past retention.

It joins the reconciler as an after-tick hook that only keeps the latest snapshot (which
instances exist, where, with what pid and restart count); scraping happens on its own
thread, so a slow instance never delays a reconcile tick.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psutil

from eas_core.config import ControllerSettings
from eas_core.controller.backends import gpus
from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.metrics.rates import (
    Totals,
    combined,
    gateway_totals,
    gateway_values,
    instance_totals,
    step_values,
)
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import COARSE, FINE, Point, SeriesStore
from eas_core.spec.paths import METRICS_PATH
from eas_core.spec.status import InstanceStatus

log = logging.getLogger(__name__)

SCRAPED = (InstanceStatus.STARTING, InstanceStatus.RUNNING)


@dataclass(frozen=True)
class Sample:
    """One scrape of one instance: when, its counters, and its processes' CPU seconds."""

    time: float
    totals: Totals
    cpu_seconds: float | None
    memory_mb: float | None
    pids: tuple[int, ...] = ()  # the instance's process tree, where it runs on this machine


def children_by_parent() -> dict[int, list[int]]:
    """Parent pid → child pids of every process, read once per round: asking psutil for one
    tree's children scans every process, once per instance."""
    children: dict[int, list[int]] = {}
    for process in psutil.process_iter(["ppid"]):
        children.setdefault(process.info["ppid"] or 0, []).append(process.pid)
    return children


def process_tree(pid: int | None, children: dict[int, list[int]]) -> list[int]:
    """``pid`` and its descendants (worker processes, an ENV interpreter)."""
    tree, todo = [], [] if pid is None else [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def process_tree_usage(
    pid: int | None, children: dict[int, list[int]]
) -> tuple[float | None, float | None]:
    """CPU seconds and resident MB of ``pid`` and its descendants (worker processes); None
    where there is no local process to read (another backend, or already gone)."""
    tree = process_tree(pid, children)
    cpu = memory = 0.0
    found = False
    for member in tree:
        try:
            process = psutil.Process(member)
            with process.oneshot():
                times = process.cpu_times()
                rss = process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # ended between the listing and the read
        found = True
        cpu += times.user + times.system
        memory += rss / (1024 * 1024)
    return (cpu, memory) if found else (None, None)


GpuUsage = dict[int, list[gpus.GpuUse]]


def gpu_values(sample: Sample, use: GpuUsage) -> dict[str, float]:
    """GPU memory held by the instance's processes (MB) and the busiest utilisation (%) of
    the devices they hold memory on; nothing for an instance on no GPU."""
    held = [u for pid in sample.pids for u in use.get(pid, [])]
    if not held:
        return {}
    return {
        "gpu_memory_mb": float(sum(u.memory_mb for u in held)),
        "gpu_util": float(max(u.utilisation for u in held)),
    }


class Collector:
    def __init__(
        self,
        settings: ControllerSettings,
        series: SeriesStore,
        *,
        clock: Callable[[], float] = time.time,
        gpu_usage: Callable[[set[int]], GpuUsage] | None = None,
    ) -> None:
        self.settings = settings
        # NVML is asked once per round, for every local instance process at once — and only
        # on a machine where it found GPUs at start.
        self.gpu_usage = gpu_usage or (gpus.usage if gpus.detect() else None)
        self.series = series
        self.clock = clock
        # Every gateway of the installation counts the calls it passed on: the service's
        # gateway rates are their sum.
        self.gateway_metrics = [url + METRICS_PATH for url in settings.gateway_urls]
        self.http = httpx.Client(timeout=settings.metrics_scrape_timeout)
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="eas-scrape")
        self.snapshot = Snapshot()
        self.previous: dict[str, Sample] = {}
        # Instance id → its GPU values at the last round, replaced whole each round (read by
        # `eascmd w` from API threads).
        self.instance_gpu: dict[str, dict[str, float]] = {}
        # Gateway metrics URL → (when, its totals) at its last scrape.
        self.gateway_previous: dict[str, tuple[float, dict[str, Totals]]] = {}
        # (service, instance, metric) → [sum, count] of the coarse step that is filling.
        self.coarse: dict[tuple[str, str, str], list[float]] = {}
        self.coarse_step_start: float | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="eas-metrics", daemon=True)

    # -- the after-tick hook ------------------------------------------------------------
    def __call__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():  # stop() also ends a collector that was never started
            self.thread.join(timeout=10)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.http.close()

    def _loop(self) -> None:
        while not self.stopping.wait(self.settings.metrics_interval):
            try:
                self.collect()
            except Exception:  # a bad round must not end collection
                log.exception("metrics collection failed")

    # -- one round ----------------------------------------------------------------------
    def collect(self) -> list[Point]:
        """Scrape everything once, store the points, and return them."""
        instances = [i for i in self.snapshot.instances if i.status in SCRAPED and i.port]
        children = children_by_parent() if any(i.pid for i in instances) else {}
        scraped = list(self.pool.map(lambda i: self._scrape(i, children), instances))
        pids = {pid for sample in scraped if sample is not None for pid in sample.pids}
        use = self.gpu_usage(pids) if self.gpu_usage is not None and pids else {}
        now = self.clock()
        points: list[Point] = []
        changes: dict[str, list[tuple[Totals, float]]] = {}
        usage: dict[str, dict[str, float]] = {}
        seen: set[str] = set()
        instance_gpu: dict[str, dict[str, float]] = {}
        for instance, sample in zip(instances, scraped, strict=True):
            seen.add(instance.id)
            on_gpu = gpu_values(sample, use) if sample is not None else {}
            if on_gpu:
                instance_gpu[instance.id] = on_gpu
            self._usage(instance, sample, usage, on_gpu)
            if sample is None:
                continue
            before = self.previous.get(instance.id)
            self.previous[instance.id] = sample
            if before is None:
                continue  # a first scrape is the baseline of the next step
            seconds = sample.time - before.time
            if seconds <= 0:
                continue
            change = sample.totals.delta(before.totals)
            changes.setdefault(instance.service, []).append((change, seconds))
            values = step_values(change, seconds)
            if sample.cpu_seconds is not None and before.cpu_seconds is not None:
                values["cpu_cores"] = max(sample.cpu_seconds - before.cpu_seconds, 0) / seconds
            if sample.memory_mb is not None:
                values["memory_mb"] = sample.memory_mb
            values.update(on_gpu)
            values["restarts"] = instance.restarts
            points += [Point(instance.service, instance.id, m, now, v) for m, v in values.items()]
        for gone in set(self.previous) - seen:
            del self.previous[gone]
        self.instance_gpu = instance_gpu
        for service, parts in changes.items():
            seconds = sum(s for _, s in parts) / len(parts)
            values = step_values(combined(c for c, _ in parts), seconds)
            values.update(usage.get(service, {}))
            points += [Point(service, "", m, now, v) for m, v in values.items()]
        points += self._gateway(now, {i.service for i in instances})
        self.series.write(FINE, points)
        self._downsample(now, points)
        return points

    def _scrape(self, instance: ObservedInstance, children: dict[int, list[int]]) -> Sample | None:
        url = f"http://{instance.host}:{instance.port}{METRICS_PATH}"
        try:
            answer = self.http.get(url)
            answer.raise_for_status()
            totals = instance_totals(answer.text)
        except (httpx.HTTPError, ValueError) as exc:  # starting, stopping or hung: no point
            log.debug("cannot scrape %s: %s", url, exc)
            return None
        cpu, memory = process_tree_usage(instance.pid, children)
        tree = tuple(process_tree(instance.pid, children))
        return Sample(time.monotonic(), totals, cpu, memory, tree)

    def _usage(
        self,
        instance: ObservedInstance,
        sample: Sample | None,
        usage: dict[str, dict[str, float]],
        on_gpu: dict[str, float],
    ) -> None:
        """Add the instance's CPU cores, memory, GPU and restarts to its service's totals."""
        mine = usage.setdefault(instance.service, {"restarts": 0.0})
        mine["restarts"] += instance.restarts
        before = self.previous.get(instance.id)
        if sample is None:
            return
        if on_gpu:
            mine["gpu_memory_mb"] = mine.get("gpu_memory_mb", 0.0) + on_gpu["gpu_memory_mb"]
            mine["gpu_util"] = max(mine.get("gpu_util", 0.0), on_gpu["gpu_util"])
        if sample.memory_mb is None:
            return
        mine["memory_mb"] = mine.get("memory_mb", 0.0) + sample.memory_mb
        if before is not None and before.cpu_seconds is not None and sample.cpu_seconds:
            seconds = sample.time - before.time
            if seconds > 0:
                cores = max(sample.cpu_seconds - before.cpu_seconds, 0) / seconds
                mine["cpu_cores"] = mine.get("cpu_cores", 0.0) + cores

    def _gateway(self, now: float, services: set[str]) -> list[Point]:
        summed: dict[str, dict[str, float]] = {}
        for url in self.gateway_metrics:
            for service, values in self._gateway_rates(url, services).items():
                into = summed.setdefault(service, {})
                for metric, value in values.items():
                    into[metric] = into.get(metric, 0.0) + value
        return [
            Point(service, "", metric, now, value)
            for service, values in summed.items()
            for metric, value in values.items()
        ]

    def _gateway_rates(self, url: str, services: set[str]) -> dict[str, dict[str, float]]:
        """Service → its rates through one gateway since that gateway's last scrape."""
        try:
            answer = self.http.get(url)
            answer.raise_for_status()
            totals = gateway_totals(answer.text)
        except (httpx.HTTPError, ValueError) as exc:
            log.debug("cannot scrape the gateway at %s: %s", url, exc)
            return {}
        at = time.monotonic()
        before = self.gateway_previous.get(url)
        self.gateway_previous[url] = (at, totals)
        if before is None or at <= before[0]:
            return {}
        rates = {}
        for service, current in totals.items():
            if service not in services and service not in before[1]:
                continue  # "_unknown" and services gone: nothing to chart
            rates[service] = gateway_values(current.delta(before[1].get(service)), at - before[0])
        return rates

    # -- the coarse tier ----------------------------------------------------------------
    def _downsample(self, now: float, points: list[Point]) -> None:
        step = self.settings.metrics_coarse_step
        start = math.floor(now / step) * step
        if self.coarse_step_start is not None and start != self.coarse_step_start:
            end = self.coarse_step_start + step
            self.series.write(
                COARSE,
                [
                    Point(service, instance, metric, end, total / count)
                    for (service, instance, metric), (total, count) in self.coarse.items()
                ],
            )
            self.coarse.clear()
            # Once per coarse step is often enough to keep both tiers bounded.
            self.series.prune(FINE, now - self.settings.metrics_fine_seconds)
            self.series.prune(COARSE, now - self.settings.metrics_coarse_seconds)
        self.coarse_step_start = start
        for p in points:
            acc = self.coarse.setdefault((p.service, p.instance, p.metric), [0.0, 0.0])
            acc[0] += p.value
            acc[1] += 1
