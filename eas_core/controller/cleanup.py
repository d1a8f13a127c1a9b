"""After each tick, drop what deletion left behind: a deleted service once none of its
instances is left, and a retired name (its endpoint served by its released related service)
once its related services are gone too.

``removable`` is pure — records and observed instances in, names out; ``Cleanup`` is the
after-tick hook that removes them, and their monitoring series with them: a new service of
the same name starts with empty charts, and nothing keeps the rows of a name no longer
served (the others age out through the collector's pruning).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import Repository, SeriesStore, ServiceRecord, ServiceState

log = logging.getLogger(__name__)


def removable(services: Sequence[ServiceRecord], observed: Sequence[ObservedInstance]) -> list[str]:
    remaining = {o.service for o in observed}
    # A related service being deleted no longer holds its original's name.
    related_to = {s.related_to for s in services if s.state is not ServiceState.DELETING}
    return [
        s.name
        for s in services
        if (s.state is ServiceState.DELETING and s.name not in remaining)
        or (s.state is ServiceState.RETIRED and s.name not in related_to)
    ]


class Cleanup:
    def __init__(self, repo: Repository, series: SeriesStore) -> None:
        self.repo = repo
        self.series = series

    def __call__(self, snapshot: Snapshot) -> None:
        for name in removable(self.repo.list_services(), snapshot.instances):
            try:
                self.repo.delete_service(name)
                self.series.forget(name)
            except Exception:  # the others are still collected
                log.exception("cannot remove deleted service %s", name)
