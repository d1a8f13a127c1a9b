"""What pydantic cannot know of a description: whether this installation serves its processor,
has its resource group and nodes big enough for its instances, and may read its sources.

A description passes these before anything is fetched or written, and again whenever it
comes back into use (`modify`, `version`): the nodes and the allow-list may have changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from eas_core.controller.backends.base import DEFAULT_RESOURCE_GROUP, NodeInfo
from eas_core.controller.sources import SourcePolicy
from eas_core.errors import InvalidDescription
from eas_core.spec.service import Metadata, ServiceDescription, unsupported_settings
from processors import registry


class Checks:
    def __init__(
        self,
        nodes: Callable[[], list[NodeInfo]],
        sources: SourcePolicy,
        *,
        native_in_public: bool = True,
        created_groups: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.nodes = nodes  # the backend's: its nodes' groups are resource groups
        self.sources = sources
        self.native_in_public = native_in_public
        # Groups created by name (`eascmd resource create`), which may have no node yet.
        self.created_groups = created_groups

    def check(self, description: ServiceDescription) -> None:
        """Processor codes and types, resource group, node sizes; every problem named."""
        errors = []
        if description.processor and (refused := registry.refusal(description.processor)):
            errors.append(refused)
        if description.processor_type and (
            refused := registry.custom_refusal(description.processor_type)
        ):
            errors.append(refused)
        if (
            description.processor_type in ("cpp", "java")
            and description.metadata.resource == "public"
            and not self.native_in_public
        ):
            errors.append(
                f"processor_type: {description.processor_type} processors may not run in the "
                f"public resource group on this installation (EAS_NATIVE_PROCESSORS_IN_PUBLIC "
                f"is false); set metadata.resource to a dedicated group"
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
        known = {DEFAULT_RESOURCE_GROUP, *self.created_groups(), *(n.group for n in everywhere)}
        if meta.resource not in known:
            groups = ", ".join(sorted(known))
            return [f"metadata.resource: no resource group {meta.resource!r} (have: {groups})"]
        if not nodes:
            # A group no node has joined yet: its instances wait Pending, saying so, until a
            # node joins; node sizes are checked again at `modify` and `version`.
            return []
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
        if not errors:
            errors += _all_fit(meta, nodes)
        return errors


def _slots(node: NodeInfo, meta: Metadata) -> int:
    """How many instances of this size the node holds when nothing else runs on it."""
    slack = 1e-9  # 4 × 0.1 cores fit 0.4: float sums must not refuse an exact fit
    slots = min(int((node.cpu + slack) // meta.cpu), node.memory_mb // meta.memory_mb)
    if meta.gpu:
        slots = min(slots, node.gpu // meta.gpu)
    return slots


def _all_fit(meta: Metadata, nodes: list[NodeInfo]) -> list[str]:
    """The wanted instances fit the group's nodes by their sizes, not by what is free now: a
    count that can never be placed is refused here instead of waiting for room forever.
    What fits the sizes but not the free space waits Pending, with the reason."""
    slots = sum(_slots(n, meta) for n in nodes)
    if meta.instance <= slots:
        return []
    cores = sum(n.cpu for n in nodes)
    memory = sum(n.memory_mb for n in nodes)
    gpu = f" and {meta.gpu} GPU" if meta.gpu else ""
    plural = "s" if len(nodes) > 1 else ""
    return [
        f"metadata.instance: {meta.instance} instances × {meta.cpu:g} cpu, "
        f"{meta.memory_mb} MB{gpu} need {meta.instance * meta.cpu:g} cores and "
        f"{meta.instance * meta.memory_mb} MB; the {len(nodes)} node{plural} of resource group "
        f"{meta.resource!r} ({cores:g} cores, {memory} MB in all) hold at most {slots} such "
        f"instance{'s' if slots != 1 else ''} even with nothing else running"
    ]
