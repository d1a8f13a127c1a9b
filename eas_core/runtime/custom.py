"""The Python custom-processor base class behind ``allspark.BaseProcessor``.

The user's class keeps PAI-EAS's names (``initialize``, ``process(data)``); an adapter maps
it onto the runtime's Processor interface so the runtime knows one shape only.

Server-side batching (``rpc.batching``) is opt-in: a class that defines
``process_batch(self, data_list)`` gets up to ``rpc.max_batch_size`` request bodies at once
and answers a list with one ``(data, status)`` per body, in order — a bad item answers its own
error status and fails only its own request; an exception fails the whole batch. A class
without it is refused at instance start when the service asks for batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from eas_core.config import RuntimeSettings
from eas_core.runtime.workers import serve
from processors.base import RequestContext


class BaseProcessor:
    def __init__(
        self, worker_threads: int = 5, worker_processes: int = 1, endpoint: str | None = None
    ) -> None:
        if worker_threads < 1 or worker_processes < 1:
            raise ValueError("worker_threads and worker_processes must be at least 1")
        self.worker_threads = worker_threads
        self.worker_processes = worker_processes
        self.endpoint = endpoint
        self._model_entry = ""
        self._model_config = ""

    # -- what a processor author overrides ----------------------------------------------
    def initialize(self) -> None:
        """Load the model; runs once per worker process before the service is ready."""

    def process(self, data: bytes) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement process(data)")

    # A subclass may define ``process_batch(self, data_list: list[bytes]) -> list[(bytes,
    # status)]`` to be handed whole batches under rpc.batching (see the module docstring).

    # -- what a processor author may call -----------------------------------------------
    def get_model_path(self) -> str:
        """Local path of the service's model (``model_path`` / ``model_entry``), or ""."""
        return self._model_entry

    def get_model_config(self) -> str:
        return self._model_config

    def run(self) -> NoReturn:
        settings = RuntimeSettings()
        if not settings.is_managed and self.endpoint:
            host, _, port = self.endpoint.rpartition(":")
            settings = settings.model_copy(update={"host": host or "0.0.0.0", "port": int(port)})
        threads = settings.worker_threads or self.worker_threads
        processes = settings.worker_processes or self.worker_processes
        adapter = _BatchAdapter if callable(getattr(self, "process_batch", None)) else _Adapter
        serve(lambda: adapter(self), settings, threads=threads, processes=processes)


class _Adapter:
    """Presents a user's BaseProcessor as a runtime Processor."""

    def __init__(self, user: BaseProcessor) -> None:
        self.user = user

    def load(self, model_entry: str, model_config: str) -> None:
        self.user._model_entry = model_entry
        self.user._model_config = model_config
        self.user.initialize()

    def process(self, body: bytes, ctx: RequestContext) -> Any:
        return self.user.process(body)


class _BatchAdapter(_Adapter):
    """For a user class that defines ``process_batch(self, data_list)``."""

    def process_batch(self, bodies: Sequence[bytes], ctxs: Sequence[RequestContext]) -> Any:
        return self.user.process_batch(list(bodies))  # type: ignore[attr-defined]
