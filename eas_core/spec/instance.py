"""What one instance runs: the boot document and the runtime environment.

The controller (or `eascmd test`) writes these; the instance's boot reads them. Keeping the
shapes here lets both sides agree without importing each other.
"""

from __future__ import annotations

from pydantic import BaseModel

from eas_core.errors import InvalidDescription
from eas_core.spec.service import ServiceDescription

# The kernel refuses to start a process with a NUL in its environment or with one variable
# longer than MAX_ARG_STRLEN (32 pages: 128 KiB, the "NAME=" and the final NUL included).
MAX_VARIABLE_BYTES = 128 * 1024 - 1
# Which description field each variable comes from, to name it when one is refused.
_FIELD_OF = {
    "EAS_SERVICE_NAME": "name",
    "EAS_TOKEN": "token",
    "EAS_MODEL_CONFIG": "model_config",
    "EAS_PROCESSOR": "processor",
}


class ArtefactSpec(BaseModel):
    """A package snapshot in the installation's artefact store, named so that any node can
    fetch it: by its ``eas://`` URI, and checked against its sha256 ``digest``."""

    uri: str
    digest: str
    filename: str


class BootSpec(BaseModel):
    """What an instance runs: one version of one service, with its artefacts by URI. Where the
    node keeps its store and cache is the node's own setting (``EAS_ARTEFACT_STORE``,
    ``EAS_CACHE_DIR``, ``EAS_MAX_ARTEFACT_BYTES``: eas_core.config.RuntimeSettings), never a
    path on the controller's disk. (Boot specs written before carried those paths; they are
    ignored.)"""

    service: str
    version: int
    model: ArtefactSpec | None = None
    model_entry: str | None = None
    processor_code: str | None = None
    processor_type: str | None = None
    processor: ArtefactSpec | None = None
    processor_entry: str | None = None
    processor_mainclass: str | None = None


def boot_spec(
    description: ServiceDescription, *, version: int, artefacts: dict[str, dict[str, object]]
) -> BootSpec:
    def artefact(kind: str) -> ArtefactSpec | None:
        found = artefacts.get(kind)
        return ArtefactSpec.model_validate(found) if found else None

    return BootSpec(
        service=description.name,
        version=version,
        model=artefact("model"),
        model_entry=description.model_entry,
        processor_code=description.processor,
        processor_type=description.processor_type,
        processor=artefact("processor"),
        processor_entry=description.processor_entry,
        processor_mainclass=description.processor_mainclass,
    )


def runtime_environment(
    description: ServiceDescription, *, version: int, token: str | None, max_body_bytes: int
) -> dict[str, str]:
    """The ``EAS_*`` variables the runtime reads (eas_core.config.RuntimeSettings)."""
    meta = description.metadata
    env = {
        "EAS_SERVICE_NAME": description.name,
        "EAS_VERSION": str(version),
        "EAS_MAX_QUEUE_SIZE": str(meta.max_queue_size),
        "EAS_KEEPALIVE_MS": str(meta.keepalive),
        "EAS_MAX_BODY_BYTES": str(max_body_bytes),
        "EAS_MODEL_CONFIG": description.model_config_text,
    }
    if token is not None:
        env["EAS_TOKEN"] = token
    if meta.worker_threads or meta.workers:
        env["EAS_WORKER_THREADS"] = str(meta.threads)
    if description.processor:
        env["EAS_PROCESSOR"] = description.processor
    if meta.batching:
        # The size and timeout mean nothing without batching (as on PAI-EAS).
        env["EAS_BATCHING"] = "true"
        env["EAS_MAX_BATCH_SIZE"] = str(meta.max_batch_size)
        env["EAS_MAX_BATCH_TIMEOUT_MS"] = str(meta.max_batch_timeout)
    check_environment(env)
    return env


def check_environment(env: dict[str, str]) -> None:
    """Refuse (naming the description field) what no process could be started with.

    Descriptions are bounded when they are accepted; this catches a stored one written
    before those bounds, so one service fails alone instead of failing at the backend."""
    problems = []
    for key, value in env.items():
        field = _FIELD_OF.get(key, key)
        if "\x00" in key or "\x00" in value:
            problems.append(f"{field}: contains a NUL byte, which no process environment holds")
        elif (size := len(f"{key}={value}".encode())) > MAX_VARIABLE_BYTES:
            problems.append(
                f"{field}: {size} bytes in the instance environment, over the kernel's "
                f"limit of {MAX_VARIABLE_BYTES}"
            )
    if problems:
        raise InvalidDescription(problems)
