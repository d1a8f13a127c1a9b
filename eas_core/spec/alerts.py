"""Alert rules on the wire (SPEC §11): which services, which metric, what condition over what
window, how often to repeat, how loud, and the callback URL the alert is POSTed to."""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from eas_core.spec.monitoring import METRICS

ALERT_NAME = r"^[a-z][a-z0-9_]{0,62}$"
ACTIVE_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
MAX_ALERT_SERVICES = 100


class AlertRule(BaseModel):
    """``{"Name": "errors", "Services": ["demo"], "Metric": "share_5xx", "Condition": ">",
    "Threshold": 10, "Window": 60, "Silence": 600, "Level": "critical",
    "CallbackUrl": "https://hooks.example.com/eas"}`` — fires when the mean of the service's
    ``Metric`` over the last ``Window`` seconds meets the condition; while it keeps firing it
    is POSTed again at most every ``Silence`` seconds; it resolves when the mean no longer
    meets it. ``Services`` empty (or absent) means every service. ``ActiveHours``
    (``"09:00-18:00"``, the controller's local time; ``"22:00-06:00"`` spans midnight) limits
    when the rule is checked: outside them nothing fires, resolves or is POSTed."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str = Field(alias="Name", pattern=ALERT_NAME)
    services: list[str] = Field(
        default_factory=list, alias="Services", max_length=MAX_ALERT_SERVICES
    )
    metric: str = Field(alias="Metric")
    condition: Literal[">", "<"] = Field(alias="Condition")
    threshold: float = Field(alias="Threshold", allow_inf_nan=False)
    window: float = Field(default=60, alias="Window", gt=0, le=86400)
    silence: float = Field(default=600, alias="Silence", ge=0, le=7 * 86400)
    level: Literal["critical", "warning", "info"] = Field(default="warning", alias="Level")
    callback_url: AnyHttpUrl = Field(alias="CallbackUrl")
    active_hours: str | None = Field(default=None, alias="ActiveHours")

    @field_validator("active_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None and not ACTIVE_HOURS.match(value):
            raise ValueError(f"{value!r} is not HH:MM-HH:MM (e.g. 09:00-18:00)")
        return value

    def is_active(self, at: datetime) -> bool:
        """Whether ``at`` (local time) falls in the active hours (always, without them)."""
        if self.active_hours is None:
            return True
        start_text, end_text = self.active_hours.split("-")
        start, end, now = time.fromisoformat(start_text), time.fromisoformat(end_text), at.time()
        if start <= end:
            return start <= now < end
        return now >= start or now < end  # spans midnight

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"{value!r} is not one of {', '.join(METRICS)}")
        return value

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not 0 < len(name) <= 64:
                raise ValueError(f"{name!r} is not a service name (1 to 64 characters)")
        return value

    def covers(self, service: str) -> bool:
        return not self.services or service in self.services


AlertStatus = Literal["firing", "resolved"]


class AlertState(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    service: str = Field(alias="ServiceName")
    status: AlertStatus = Field(alias="Status")
    since: datetime = Field(alias="Since")
    value: float = Field(alias="Value")


class Delivery(BaseModel):
    """One POST of an alert to its callback URL, after all its tries."""

    model_config = ConfigDict(populate_by_name=True)

    time: datetime = Field(alias="Time")
    service: str = Field(alias="ServiceName")
    status: AlertStatus = Field(alias="Status")
    attempts: int = Field(alias="Attempts")
    delivered: bool = Field(alias="Delivered")
    outcome: str = Field(alias="Outcome")  # "HTTP 200", or what went wrong


class AlertDetails(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    rule: AlertRule = Field(alias="Rule")
    states: list[AlertState] = Field(default_factory=list, alias="States")
    deliveries: list[Delivery] = Field(default_factory=list, alias="Deliveries")
