"""Shadow traffic on the wire: a service's mirror setting, and what the gateways saw.

`eascmd shadow NAME --to CANDIDATE --percent 20`: the gateway sends a copy of that share of
NAME's calls to CANDIDATE once NAME's own answer is on its way to the caller, and keeps the
pair of answers. Callers only ever get NAME's answer. ``GET …/shadow`` reads the pairs back
with counters: how many calls were mirrored, how many answers agreed (same status, same
bytes), how many mirrors were dropped (too many in flight, too many bytes held) and why.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_PERCENT = 100.0


class ShadowSetting(BaseModel):
    """Mirror ``percent`` % of the calls on NAME's endpoint to ``target``'s instances."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    target: str = Field(alias="Target", min_length=1, max_length=64)
    percent: float = Field(alias="Percent", ge=0, le=MAX_PERCENT)


class ShadowRoute(BaseModel):
    """In the route table: where a service's calls are mirrored. ``since`` (microseconds since
    the epoch) changes whenever the setting does, so a gateway starts its counters afresh."""

    target: str
    percent: float = Field(ge=0, le=MAX_PERCENT)
    since: int = 0


class ShadowPair(BaseModel):
    """One mirrored call: the live answer the caller got and the candidate's answer. Bodies
    are cut at the gateway's ``shadow_body_bytes`` (``…Truncated`` says so); ``Same`` compares
    the whole bodies. ``ShadowStatus`` 0: the candidate gave no answer (``ShadowError``)."""

    model_config = ConfigDict(populate_by_name=True)

    time: float = Field(alias="Time")
    live_status: int = Field(alias="LiveStatus")
    shadow_status: int = Field(alias="ShadowStatus")
    live_ms: float = Field(alias="LiveMs")
    shadow_ms: float = Field(alias="ShadowMs")
    same: bool = Field(alias="Same")
    live_body: str = Field(default="", alias="LiveBody")
    shadow_body: str = Field(default="", alias="ShadowBody")
    live_truncated: bool = Field(default=False, alias="LiveTruncated")
    shadow_truncated: bool = Field(default=False, alias="ShadowTruncated")
    shadow_error: str = Field(default="", alias="ShadowError")


class ShadowCounters(BaseModel):
    """Since the setting was made (``Since``), over every gateway."""

    model_config = ConfigDict(populate_by_name=True)

    mirrored: int = Field(default=0, alias="Mirrored")  # copies sent to the target
    compared: int = Field(default=0, alias="Compared")  # ... whose answer came back
    agreed: int = Field(default=0, alias="Agreed")
    disagreed: int = Field(default=0, alias="Disagreed")
    failed: int = Field(default=0, alias="Failed")  # no answer: unreachable, timed out
    # Copies not sent, by why: in_flight, bytes (the gateway's bounds), no_target.
    dropped: dict[str, int] = Field(default_factory=dict, alias="Dropped")

    def add(self, other: ShadowCounters) -> None:
        self.mirrored += other.mirrored
        self.compared += other.compared
        self.agreed += other.agreed
        self.disagreed += other.disagreed
        self.failed += other.failed
        for reason, count in other.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + count


class ShadowRecord(BaseModel):
    """One gateway's record of a service's mirror (``GET /api/internal/shadow/{service}``)."""

    model_config = ConfigDict(populate_by_name=True)

    since: int = Field(default=0, alias="Since")
    # Whether the gateway's route table mirrors the service now (under ``since``).
    active: bool = Field(default=False, alias="Active")
    counters: ShadowCounters = Field(default_factory=ShadowCounters, alias="Counters")
    pairs: list[ShadowPair] = Field(default_factory=list, alias="Pairs")


class ShadowReport(BaseModel):
    """``GET /api/v1/services/{name}/shadow``: the setting (None: no mirroring), the counters
    summed over the gateways, and their most recent pairs, oldest first."""

    model_config = ConfigDict(populate_by_name=True)

    service: str = Field(alias="ServiceName")
    setting: ShadowSetting | None = Field(default=None, alias="Setting")
    since: int = Field(default=0, alias="Since")
    counters: ShadowCounters = Field(default_factory=ShadowCounters, alias="Counters")
    pairs: list[ShadowPair] = Field(default_factory=list, alias="Pairs")
    # Every gateway asked has taken the setting in force (or, with mirroring off, mirrors
    # the service no more): calls from now on are mirrored as set.
    applied: bool = Field(default=False, alias="Applied")
    # Gateways that could not be asked, with why: the counters leave them out.
    unreachable: dict[str, str] = Field(default_factory=dict, alias="Unreachable")

    @property
    def disagreement_rate(self) -> float:
        compared = self.counters.compared
        return self.counters.disagreed / compared if compared else 0.0
