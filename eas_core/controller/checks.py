"""What pydantic cannot know of a description: whether this installation serves its processor,
has its resource group and nodes big enough for its instances, and may read its sources.

A description passes these before anything is fetched or written, and again whenever it
comes back into use (`modify`, `version`): the nodes and the allow-list may have changed.
"""

from __future__ import annotations

from collections.abc import Callable

from eas_core.controller.backends.base import NodeInfo
from eas_core.controller.sources import SourcePolicy
from eas_core.errors import InvalidDescription
from eas_core.spec.service import ServiceDescription, unsupported_settings
from processors import registry


class Checks:
    def __init__(self, nodes: Callable[[], list[NodeInfo]], sources: SourcePolicy) -> None:
        self.nodes = nodes  # the backend's: its nodes' groups are the resource groups
        self.sources = sources

    def check(self, description: ServiceDescription) -> None:
        """Processor codes and types, resource group, node sizes; every problem named."""
        errors = []
        if description.processor and (refused := registry.refusal(description.processor)):
            errors.append(refused)
        if (
            description.processor_type
            and description.processor_type not in registry.CUSTOM_TYPES_SUPPORTED
        ):
            errors.append(
                f"processor_type: {description.processor_type!r} processors are not supported by "
                f"this installation (supported: {', '.join(registry.CUSTOM_TYPES_SUPPORTED)})"
            )
        if description.data_image:
            errors.append(
                "data_image: this installation runs instances as processes, not container images"
            )
        errors += unsupported_settings(description.metadata)
        errors += self._fit(description)
        if errors:
            raise InvalidDescription(errors)

    def check_sources(self, description: ServiceDescription, *, fetching: bool = True) -> None:
        """The model and processor sources are ones this installation may read
        (``fetching=False``: a stored snapshot is used, nothing is fetched)."""
        self.sources.check_description(description, fetching=fetching)

    def _fit(self, description: ServiceDescription) -> list[str]:
        meta = description.metadata
        everywhere = self.nodes()
        nodes = [n for n in everywhere if n.group == meta.resource]
        if not nodes:
            groups = ", ".join(sorted({n.group for n in everywhere})) or "none"
            return [f"metadata.resource: no resource group {meta.resource!r} (have: {groups})"]
        errors = []
        group = f"of group {meta.resource!r}"
        if not any(n.cpu >= meta.cpu for n in nodes):
            errors.append(
                f"metadata.cpu: {meta.cpu:g} cores per instance is more than any node {group} "
                f"has ({max(n.cpu for n in nodes):g})"
            )
        if not any(n.memory_mb >= meta.memory_mb for n in nodes):
            errors.append(
                f"metadata.memory: {meta.memory_mb} MB per instance is more than any node "
                f"{group} has ({max(n.memory_mb for n in nodes)} MB)"
            )
        if meta.gpu and not any(n.gpu >= meta.gpu for n in nodes):
            errors.append(
                f"metadata.gpu: {meta.gpu} GPUs per instance, but no node {group} has that many"
            )
        if description.processor and registry.requires_gpu(description.processor):
            if not any(n.gpu for n in nodes):
                errors.append(
                    f"processor: {description.processor!r} runs on a GPU, and no node {group} "
                    f"has one (use its CPU code)"
                )
            elif not meta.gpu:
                errors.append(f"metadata.gpu: {description.processor!r} needs at least 1 GPU")
        return errors
