"""A deployment pipeline, declared: one YAML file (or Python object) per service, SPEC §17.

    service:      the service description (SPEC §2) to create the first time, modify afterwards
    train:        "module:function" — called with an output directory, returns (artefact, metrics)
    store:        where trained models go (installation | local | oss), one immutable URI each
    smoke_tests:  requests with expectations, plus an error-rate and latency budget over N
    rollout:      all_at_once | blue_green (steps, bake time)
    rollback_on:  smoke failure; during bake: 5xx share, latency percentile, error count
    schedule:     cron + timezone
    sensors:      new_model (watched store prefix), health (real metrics or probes +
                  thresholds), run_failure
    canary:       blue_green only: judge each release step below 100 % on both sides' real
                  metrics (error share, latency) and roll back at the first failing step
                  (eas_pipelines.canary)
    shadow:       blue_green only: mirror live calls to the candidate for a window before any
                  release step, refuse it over a disagreement rate (eas_pipelines.shadow)

Every model forbids unknown keys, so a typo is an error, and every error names its field the
way the file spells it: ``rollout.steps[1]: must be greater than the previous step (50)``.
Paths inside a declaration are relative to the file that declares them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from eas_core.sdk import SERVICE_NAME, SERVICE_NAME_RULE, FieldProblem, field_errors
from eas_pipelines.canary import CanaryDeclaration
from eas_pipelines.json_path import parse_json_path
from eas_pipelines.shadow import ShadowDeclaration

CALLABLE_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
# Files the factory picks up in a declarations directory (recursively).
DECLARATION_GLOBS = ("pipeline.yaml", "*.pipeline.yaml")


class DeclarationError(ValueError):
    """A declaration file is wrong; ``errors`` are ``field.path: message`` lines."""

    def __init__(self, source: str, errors: list[str]) -> None:
        super().__init__(f"{source}: invalid pipeline declaration\n  " + "\n  ".join(errors))
        self.source = source
        self.errors = errors


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Percent = Annotated[int, Field(ge=1, le=100)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


# -- store ------------------------------------------------------------------------------
class InstallationStore(_Model):
    """`eascmd upload`: the installation's content-addressed store (``eas://`` URIs)."""

    kind: Literal["installation"]


class LocalStore(_Model):
    """A directory the installation's nodes can read too (same machine, shared volume)."""

    kind: Literal["local"]
    path: Path
    prefix: str = ""


class OSSStore(_Model):
    """Alibaba OSS through oss2; credentials come from the environment, never the file."""

    kind: Literal["oss"]
    endpoint: str
    bucket: str
    prefix: str = ""
    access_key_id_env: str = "OSS_ACCESS_KEY_ID"
    access_key_secret_env: str = "OSS_ACCESS_KEY_SECRET"


StoreDeclaration = InstallationStore | LocalStore | OSSStore
_STORES: dict[str, type[_Model]] = {
    "installation": InstallationStore,
    "local": LocalStore,
    "oss": OSSStore,
}


# -- smoke tests ------------------------------------------------------------------------
class PathExpectation(_Model):
    """One value inside a JSON answer, found by a path like ``$[0].p_1`` or ``$.scores[2]``."""

    path: str
    equals: Any = None
    approx: float | None = None
    tolerance: float = Field(default=1e-6, ge=0)
    min: float | None = None
    max: float | None = None
    matches: str | None = None
    exists: bool = True

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        parse_json_path(value)
        return value

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from None
        return value


class Expectation(_Model):
    status: int = Field(default=200, ge=100, le=599)
    body: str | None = None
    json_body: Any = Field(default=None, alias="json")
    tolerance: float = Field(default=0.0, ge=0)
    json_path: list[PathExpectation] = Field(default_factory=list)


class SmokeRequest(_Model):
    """A request sent through the gateway; ``body`` is sent as text when it is a string,
    as JSON otherwise."""

    name: str | None = None
    body: Any = ""
    path: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    expect: Expectation = Field(default_factory=Expectation)
    latency_ms: float | None = Field(default=None, gt=0)

    @field_validator("path")
    @classmethod
    def _subpath(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("a subpath starts with '/'")
        return value


class LatencyBudget(_Model):
    percentile: float = Field(default=95, gt=0, le=100)
    budget_ms: float = Field(gt=0)


class SmokeTests(_Model):
    requests: list[SmokeRequest] = Field(min_length=1)
    repeat: int = Field(default=1, ge=1, le=10_000)
    max_error_rate: Share = 0.0
    latency: LatencyBudget | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


# -- rollout and rollback ---------------------------------------------------------------
class Rollout(_Model):
    strategy: Literal["all_at_once", "blue_green"] = "all_at_once"
    steps: list[Percent] = Field(default_factory=lambda: [100])
    bake_seconds: float = Field(default=0.0, ge=0)
    # How often the bake probe sends the smoke requests through the original endpoint.
    probe_interval_seconds: float = Field(default=0.2, gt=0)
    ready_timeout_seconds: float = Field(default=300.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _bare_strategy(cls, value: Any) -> Any:
        return {"strategy": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _steps(self) -> Rollout:
        if self.strategy == "all_at_once" and self.steps != [100]:
            raise FieldProblem("steps", "only blue_green rollouts take steps")
        for i in range(1, len(self.steps)):
            if self.steps[i] <= self.steps[i - 1]:
                raise FieldProblem(
                    f"steps[{i}]",
                    f"must be greater than the previous step ({self.steps[i - 1]})",
                )
        if self.steps[-1] != 100:
            raise FieldProblem(f"steps[{len(self.steps) - 1}]", "the last step must be 100")
        return self


class BakeThresholds(_Model):
    """Probed through the original endpoint while a step bakes: any breach rolls back."""

    max_5xx_share: Share | None = None
    latency: LatencyBudget | None = None
    max_errors: int | None = Field(default=None, ge=0)


class RollbackOn(_Model):
    smoke_failure: bool = True
    bake: BakeThresholds = Field(default_factory=lambda: BakeThresholds(max_errors=0))


# -- schedule and sensors ---------------------------------------------------------------
class Schedule(_Model):
    cron: str
    timezone: str = "UTC"
    enabled: bool = False

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '0 */2 * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (e.g. 'UTC', 'Asia/Shanghai')") from None
        return value


class NewModelSensor(_Model):
    prefix: str = "incoming"
    interval_seconds: int = Field(default=30, ge=1)
    enabled: bool = False


class HealthSensor(_Model):
    interval_seconds: int = Field(default=60, ge=1)
    # ``metrics``: the service's real traffic over the last ``metrics_window_seconds`` from
    # the metrics API (5xx share, latency percentile); ``probe``: the smoke requests, sent
    # ``samples`` times (for a service without steady traffic).
    judge: Literal["metrics", "probe"] = "metrics"
    metrics_window_seconds: float = Field(default=300.0, gt=0, le=24 * 3600)
    # Fewer answers than this in the window: nothing to judge, no rollback.
    min_requests: int = Field(default=20, ge=1)
    # Each probe sends every smoke request this many times.
    samples: int = Field(default=3, ge=1)
    max_error_rate: Share = 0.0
    latency: LatencyBudget | None = None
    # Only a version this young is rolled back: an old version breaking is not the
    # deployment's fault, and rolling it back would undo more than the last deploy.
    window_seconds: float = Field(default=24 * 3600, gt=0)
    enabled: bool = False


class RunFailure(_Model):
    webhook: str | None = None

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class Sensors(_Model):
    new_model: NewModelSensor | None = None
    health: HealthSensor | None = None
    run_failure: RunFailure | None = None


# -- the declaration --------------------------------------------------------------------
class PipelineDeclaration(_Model):
    service: dict[str, Any]
    train: str
    store: StoreDeclaration
    smoke_tests: SmokeTests
    rollout: Rollout = Field(default_factory=Rollout)
    rollback_on: RollbackOn = Field(default_factory=RollbackOn)
    schedule: Schedule | None = None
    sensors: Sensors = Field(default_factory=Sensors)
    shadow: ShadowDeclaration | None = None
    canary: CanaryDeclaration | None = None

    # Where relative paths in the declaration start (the declaring file's directory).
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("service")
    @classmethod
    def _service(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The core validates the whole description when the service is created; here only
        # what the pipeline itself relies on, so a bad file fails when loaded, not at 2 am.
        name = value.get("name")
        if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
            raise FieldProblem("name", f"{SERVICE_NAME_RULE} (got {name!r})")
        if "model_path" in value:
            raise FieldProblem("model_path", "set by the pipeline from the store; remove it")
        metadata = value.get("metadata")
        if not isinstance(metadata, dict) or "instance" not in metadata:
            raise FieldProblem("metadata.instance", "required (number of instances)")
        return value

    @field_validator("store", mode="before")
    @classmethod
    def _store(cls, value: Any) -> Any:
        # Chosen by `kind` here rather than by a pydantic discriminator, whose errors would
        # put the kind into the path (`store.local.path`) where the file has none.
        if not isinstance(value, dict):
            return value
        kind = value.get("kind")
        if kind not in _STORES:
            raise FieldProblem("kind", f"expected one of {', '.join(_STORES)}, got {kind!r}")
        try:
            return _STORES[kind].model_validate(value)
        except ValidationError as exc:
            raise FieldProblem.nested(exc) from None

    @field_validator("train")
    @classmethod
    def _train(cls, value: str) -> str:
        if not CALLABLE_REF.fullmatch(value):
            raise ValueError(f"{value!r}: expected 'module:function', e.g. 'my_pkg.train:train'")
        return value

    @model_validator(mode="after")
    def _sensors_fit_store(self) -> PipelineDeclaration:
        if self.sensors.new_model is not None and self.store.kind == "installation":
            raise FieldProblem(
                "sensors.new_model",
                "the installation store cannot be listed; watch a local or oss store",
            )
        return self

    @model_validator(mode="after")
    def _shadow_needs_blue_green(self) -> PipelineDeclaration:
        if self.shadow is not None and self.rollout.strategy != "blue_green":
            raise FieldProblem(
                "shadow",
                "needs rollout strategy blue_green: the candidate runs beside the live "
                "service while it answers mirrored calls",
            )
        return self

    @model_validator(mode="after")
    def _canary_needs_steps(self) -> PipelineDeclaration:
        if self.canary is None:
            return self
        if self.rollout.strategy != "blue_green":
            raise FieldProblem(
                "canary",
                "needs rollout strategy blue_green: the canary is the related service "
                "beside the live one",
            )
        if self.rollout.steps[0] >= 100:
            raise FieldProblem(
                "rollout.steps",
                "a canary needs a step below 100 (e.g. [5, 25, 50, 100]): at 100 % there is "
                "no baseline traffic to compare with",
            )
        return self

    @property
    def name(self) -> str:
        """The service name: also the asset key prefix and the job name prefix."""
        return str(self.service["name"])

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def resolve(self, path: str | Path) -> Path:
        """A path from the declaration, made absolute against the declaring file."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self._base_dir / path).resolve()


def parse_declaration(
    document: Any, *, source: str = "<declaration>", base_dir: Path | None = None
) -> PipelineDeclaration:
    """Validate a declaration given as a Python object (e.g. from YAML)."""
    if not isinstance(document, dict):
        raise DeclarationError(source, ["(top level): expected a mapping of fields"])
    try:
        declaration = PipelineDeclaration.model_validate(document)
    except ValidationError as exc:
        raise DeclarationError(source, field_errors(exc)) from None
    declaration._base_dir = (base_dir or Path.cwd()).resolve()
    return declaration


def load_declaration(path: Path) -> PipelineDeclaration:
    """Read and validate one YAML declaration file."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise DeclarationError(str(path), [f"(file): cannot read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        raise DeclarationError(str(path), [f"(file): not valid YAML ({exc})"]) from None
    return parse_declaration(document, source=str(path), base_dir=path.parent)


def find_declarations(directory: Path) -> list[Path]:
    """Every declaration file under ``directory``: ``**/pipeline.yaml`` and
    ``**/*.pipeline.yaml``, in a stable order."""
    found = {p for pattern in DECLARATION_GLOBS for p in directory.rglob(pattern)}
    return sorted(p for p in found if p.is_file())


def load_declarations(directory: Path) -> list[PipelineDeclaration]:
    """All declarations of a directory; two pipelines for one service is an error."""
    declarations: list[PipelineDeclaration] = []
    seen: dict[str, Path] = {}
    for path in find_declarations(directory):
        declaration = load_declaration(path)
        if declaration.name in seen:
            first = seen[declaration.name]
            message = f"service.name: {declaration.name!r} is already declared by {first}"
            raise DeclarationError(str(path), [message])
        seen[declaration.name] = path
        declarations.append(declaration)
    return declarations
