"""Monitoring on the wire: the metric names a service's time series have, how far back a query
looks (``since``), and the answer of ``GET /api/v1/services/{name}/metrics``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Each metric, with what it means. Rates are per second over the step that ends at the
# point's time; latency percentiles come from the instances' histogram buckets.
METRICS: dict[str, str] = {
    "rps": "requests answered per second",
    "rps_2xx": "2xx answers per second",
    "rps_4xx": "4xx answers per second",
    "rps_5xx": "5xx answers per second",
    "share_4xx": "4xx answers, % of all answers",
    "share_5xx": "5xx answers, % of all answers",
    "latency_p50_ms": "median time from admission to answer, ms",
    "latency_p90_ms": "90th percentile time from admission to answer, ms",
    "latency_p99_ms": "99th percentile time from admission to answer, ms",
    "queue": "requests admitted whose processor call has not ended",
    "batch_size": "mean requests per processor batch",
    "in_kbps": "request bodies received, KB/s",
    "out_kbps": "response bodies sent, KB/s",
    "cpu_cores": "CPU cores used by the instance's processes",
    "memory_mb": "resident memory of the instance's processes, MB",
    "gpu_memory_mb": "GPU memory held by the instance's processes, MB (where NVML finds GPUs)",
    "gpu_util": "utilisation of the busiest GPU the instance's processes run on, %",
    "restarts": "times instances were restarted",
    "gateway_rps": "calls the gateway answered for the service per second",
    "gateway_rps_5xx": "5xx answers of the gateway for the service per second",
}

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SINCE_SECONDS = 30 * 86400


def parse_since(text: str) -> float:
    """``30s``, ``15m``, ``2h``, ``7d`` or plain seconds, as seconds."""
    match = _SINCE.match(text)
    if match is None:
        raise ValueError(f"since: {text!r} is not a duration such as 30s, 15m, 2h or 7d")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if not 0 < seconds <= MAX_SINCE_SECONDS:
        raise ValueError(f"since: {text!r} must be more than 0 and at most 30d")
    return seconds


class Series(BaseModel):
    """One metric of the whole service (``instance`` None) or of one instance: points as
    ``[unix time, value]``, oldest first."""

    model_config = ConfigDict(populate_by_name=True)

    metric: str = Field(alias="Metric")
    instance: str | None = Field(default=None, alias="Instance")
    points: list[tuple[float, float]] = Field(default_factory=list, alias="Points")


class ServiceMetrics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    service: str = Field(alias="ServiceName")
    # Seconds between points: the collection interval within the last hour, the
    # downsampled step beyond it.
    step: float = Field(alias="Step")
    since: float = Field(alias="Since")
    series: list[Series] = Field(default_factory=list, alias="Series")

    def get(self, metric: str, instance: str | None = None) -> Series | None:
        for series in self.series:
            if series.metric == metric and series.instance == instance:
                return series
        return None


# -- autoscaling ---------------------------------------------------------------------------
ScaleMetric = Literal["qps", "cpu", "queue"]
SCALE_TARGETS: dict[str, str] = {
    "qps": "requests per second per instance",
    "cpu": "CPU utilisation per instance, % of its metadata.cpu",
    "queue": "queued requests per instance",
}
MAX_SCALE_INSTANCES = 1000  # as metadata.instance


class AutoscaleRule(BaseModel):
    """`eascmd autoscale NAME --min 1 --max 8 --qps 200`: keep between ``min`` and ``max``
    instances, as many as make ``metric`` per instance about ``target``."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    # 0: scale to zero when idle; the gateway holds the next call while one starts.
    min: int = Field(alias="Min", ge=0, le=MAX_SCALE_INSTANCES)
    max: int = Field(alias="Max", ge=1, le=MAX_SCALE_INSTANCES)
    metric: ScaleMetric = Field(alias="Metric")
    target: float = Field(alias="Target", gt=0, le=1_000_000)

    @model_validator(mode="after")
    def _ordered(self) -> AutoscaleRule:
        if self.max < self.min:
            raise ValueError(f"Max: {self.max} is below Min ({self.min})")
        return self


class Event(BaseModel):
    """Something the controller did to a service on its own, and why (`eascmd events`)."""

    model_config = ConfigDict(populate_by_name=True)

    time: datetime = Field(alias="Time")
    kind: str = Field(alias="Kind")
    message: str = Field(alias="Message")


class AutoscaleStatus(BaseModel):
    """A service's autoscaling: its rule, or None when it scales only when told."""

    model_config = ConfigDict(populate_by_name=True)

    service: str = Field(alias="ServiceName")
    rule: AutoscaleRule | None = Field(default=None, alias="Rule")
