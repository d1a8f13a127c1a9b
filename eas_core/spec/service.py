"""The service description (SPEC §2): one pydantic schema, wire spellings as aliases.

Unknown keys are kept (top level and in ``metadata``) and shown back by ``desc``. Every
validation error names its field (``metadata.cpu: must be > 0``); :func:`parse_description`
turns pydantic's errors into :class:`~eas_core.errors.InvalidDescription`.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from eas_core.errors import InvalidDescription
from eas_core.spec.limits import (
    MAX_MODEL_CONFIG_BYTES,
    MAX_NAME_CHARS,
    MAX_PATH_CHARS,
    MAX_SHORT_CHARS,
    MAX_TOKEN_CHARS,
    check_plain,
    check_text,
    decode_json,
    document_problems,
)
from eas_core.spec.validation import FieldProblem, field_errors, near_misses

MAX_SERVICE_NAME = 63
# The one rule for a service name, wherever one is written (descriptions, pipelines).
SERVICE_NAME = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_SERVICE_NAME - 1}}}")
SERVICE_NAME_RULE = (
    "must start with a lowercase letter and hold only lowercase letters, digits and '_' "
    f"(at most {MAX_SERVICE_NAME} characters)"
)
# A related service is named `<original>_<8 hex digits>` (`eascmd create -r`).
RELATED_SUFFIX_CHARS = 9
# Largest values of the numeric settings: far past any real use, small enough to store.
MAX_CPU = 1024.0
MAX_MEMORY_MB = 16 * 1024 * 1024
MAX_GPU = 64
MAX_MILLISECONDS = 3_600_000


# Strings with a length bound and no control characters.
PathField = Annotated[
    str, StringConstraints(max_length=MAX_PATH_CHARS), AfterValidator(check_plain)
]
NameField = Annotated[
    str, StringConstraints(max_length=MAX_NAME_CHARS), AfterValidator(check_plain)
]
ShortField = Annotated[
    str, StringConstraints(max_length=MAX_SHORT_CHARS), AfterValidator(check_plain)
]


def _check_token(value: str) -> str:
    bad = next((i for i, c in enumerate(value) if not "\x21" <= c <= "\x7e"), None)
    if bad is not None:
        raise ValueError(
            f"must be visible ASCII with no spaces (found U+{ord(value[bad]):04X} at offset {bad})"
        )
    return value


TokenField = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TOKEN_CHARS),
    AfterValidator(_check_token),
]
TextField = Annotated[str, AfterValidator(check_text)]
# Fields whose change makes a new version (SPEC §2, `modify -s`).
VERSIONED_FIELDS = (
    "model_path",
    "model_entry",
    "model_config",
    "processor",
    "processor_path",
    "processor_entry",
    "processor_mainclass",
    "processor_type",
    "data_image",
    "oss_endpoint",
)
# Metadata a version switch leaves as it is (`eascmd version`, unless --with-resources): how
# much runs and on what — capacity the operator sized since, not part of what the version
# computes. Everything else (model, processor, their config, rpc.keepalive, batching) rolls
# back with the version. Each setting under every name a description may use for it.
RESOURCE_SETTINGS = (
    ("instance",),
    ("cpu",),
    ("memory",),
    ("gpu",),
    ("resource",),
    ("workers",),
    ("rpc.worker_threads", "worker_threads"),
    ("rpc.io_threads", "io_threads"),
    ("rpc.max_queue_size", "max_queue_size"),
)


class Metadata(BaseModel):
    """Resources and runtime settings of every instance of a service."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    instance: int = Field(ge=0, le=1000)
    cpu: float = Field(default=1, gt=0, le=MAX_CPU, allow_inf_nan=False)
    memory: int | None = Field(
        default=None, gt=0, le=MAX_MEMORY_MB, description="MB; default 4000 × cpu"
    )
    gpu: int = Field(default=0, ge=0, le=MAX_GPU)
    cuda: ShortField | None = None
    resource: ShortField = "public"
    region: ShortField | None = None
    workers: int | None = Field(default=None, ge=1, le=1024)
    # Server-side batching (eas_core.runtime.batcher); the batch size and timeout take
    # effect only with it, as on PAI-EAS.
    batching: bool = Field(default=False, alias="rpc.batching")
    max_batch_size: int = Field(default=16, ge=1, le=65536, alias="rpc.max_batch_size")
    max_batch_timeout: int = Field(
        default=50, ge=0, le=MAX_MILLISECONDS, alias="rpc.max_batch_timeout"
    )
    keepalive: int = Field(default=5000, gt=0, le=MAX_MILLISECONDS, alias="rpc.keepalive")
    # Refused at create when given (unsupported_settings): no setting changes how an
    # instance does its network I/O.
    io_threads: int | None = Field(default=None, ge=1, le=256, alias="rpc.io_threads")
    max_queue_size: int = Field(default=64, ge=1, le=1_000_000, alias="rpc.max_queue_size")
    worker_threads: int | None = Field(default=None, ge=1, le=1024, alias="rpc.worker_threads")
    # Accepted so that PAI-EAS descriptions deploy unchanged (SPEC §2); no effect here.
    enable_jemalloc: bool = Field(default=False, alias="rpc.enable_jemalloc")
    disable_failure_handler: bool = Field(
        default=False, alias="eas.handlers.disable_failure_handler"
    )

    @property
    def memory_mb(self) -> int:
        return self.memory if self.memory is not None else max(1, int(4000 * self.cpu))

    @property
    def threads(self) -> int:
        """Request-processing threads: ``rpc.worker_threads``, else ``workers``, else 5."""
        return self.worker_threads or self.workers or 5


class ServiceDescription(BaseModel):
    """What ``eascmd create`` takes; validated once at the control API."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    name: str
    token: TokenField | None = None
    generate_token: bool = True
    model_path: PathField | None = None
    oss_endpoint: NameField | None = None
    model_entry: PathField | None = None
    # Free text or a JSON object; processors always receive it as text.
    processor_model_config: TextField | dict[str, Any] | None = Field(
        default=None, alias="model_config"
    )
    processor: ShortField | None = None
    processor_path: PathField | None = None
    processor_entry: PathField | None = None
    processor_mainclass: NameField | None = None
    processor_type: Literal["python", "cpp", "java"] | None = None
    data_image: NameField | None = None
    metadata: Metadata

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_service_name(value)

    @field_validator("generate_token", mode="before")
    @classmethod
    def _bool_string(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value

    @field_validator("processor_model_config")
    @classmethod
    def _model_config_size(cls, value: str | dict[str, Any] | None) -> Any:
        if value is None:
            return value
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        size = len(text.encode())
        if size > MAX_MODEL_CONFIG_BYTES:
            raise ValueError(
                f"{size} bytes, over the limit of {MAX_MODEL_CONFIG_BYTES} (processors "
                f"receive it in an environment variable)"
            )
        return value

    @model_validator(mode="after")
    def _processor(self) -> ServiceDescription:
        if self.processor and self.processor_type:
            raise FieldProblem(
                "processor",
                "give either a built-in 'processor' code or a custom 'processor_type', not both",
            )
        if not self.processor and not self.processor_type:
            raise FieldProblem(
                "processor",
                "one of 'processor' (a built-in code) or 'processor_type' (python, cpp, java) "
                "is required",
            )
        if self.processor_type:
            if not self.processor_path:
                raise FieldProblem("processor_path", "required for a custom processor")
            if self.processor_type in ("python", "cpp") and not self.processor_entry:
                raise FieldProblem(
                    "processor_entry", f"required for a {self.processor_type} processor"
                )
            if self.processor_type == "java" and not self.processor_mainclass:
                raise FieldProblem("processor_mainclass", "required for a java processor")
        if self.model_entry and not self.model_path:
            raise FieldProblem("model_entry", "given without model_path")
        if self.oss_endpoint is None and self.model_path and self.model_path.startswith("oss://"):
            raise FieldProblem("oss_endpoint", "required when model_path is an oss:// URI")
        return self

    @property
    def model_config_text(self) -> str:
        """``model_config`` as the text handed to the processor ("" when absent)."""
        value = self.processor_model_config
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def unsupported_settings(metadata: Metadata) -> list[str]:
    """What a description asks of the instance runtime that this installation's runtime does
    not do: refused when a service is created, modified or switched to a version (and by
    ``eascmd test``), rather than accepted and silently ignored. Not part of the schema, so
    a service stored before the refusal still runs."""
    problems = []
    if metadata.io_threads is not None:
        problems.append(
            "metadata.rpc.io_threads: this installation's instances do their network I/O on "
            "one event loop per worker process, which no setting changes; leave the key out"
        )
    return problems


def check_service_name(value: str) -> str:
    """``value`` if it is a valid service name, else ValueError saying the rule."""
    if not SERVICE_NAME.fullmatch(value):
        raise ValueError(SERVICE_NAME_RULE)
    return value


def parse_description(document: Any) -> ServiceDescription:
    """Validate a decoded JSON document; raise InvalidDescription naming every bad field."""
    if not isinstance(document, dict):
        raise InvalidDescription(["description: must be a JSON object"])
    problems = document_problems(document) or near_misses(document, ServiceDescription)
    if problems:
        raise InvalidDescription(problems)
    try:
        return ServiceDescription.model_validate(document)
    except ValidationError as exc:
        raise InvalidDescription(field_errors(exc, root="description")) from None


def decode_document(text: str | bytes, what: str = "description") -> Any:
    """JSON text → value, strictly (no NaN/Infinity, bounded nesting), or InvalidDescription."""
    try:
        return decode_json(text)
    except ValueError as exc:
        raise InvalidDescription([f"{what}: not valid JSON ({exc})"]) from None


def merge_documents(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`modify -s`: fields in ``change`` replace those of ``base``; metadata merges key by key."""
    merged = dict(base)
    for key, value in change.items():
        if key == "metadata" and isinstance(value, dict) and isinstance(base.get("metadata"), dict):
            merged["metadata"] = {**base["metadata"], **value}
        else:
            merged[key] = value
    return merged


def keep_resources(target: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``target`` (a stored version's document) with ``current``'s resource and capacity
    settings (:data:`RESOURCE_SETTINGS`): a setting ``current`` leaves to its default is left
    to the default, whatever ``target`` said."""
    meta = dict(target.get("metadata") or {})
    now = current.get("metadata") or {}
    for names in RESOURCE_SETTINGS:
        for name in names:
            meta.pop(name, None)
        for name in names:
            if name in now:
                meta[name] = now[name]
    return {**target, "metadata": meta}


def changes_version(base: dict[str, Any], change: dict[str, Any]) -> bool:
    """True when ``change`` names a model or processor different from ``base`` (→ new version)."""
    return any(k in change and change[k] != base.get(k) for k in VERSIONED_FIELDS)
