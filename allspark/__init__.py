"""``import allspark``: PAI-EAS's Python processor API, so existing processors run unchanged.

    class MyProcessor(allspark.BaseProcessor):
        def initialize(self): ...          # once per worker process: load the model
        def process(self, data): ...       # one request body → (bytes, status)
    MyProcessor(worker_threads=10).run()

Run by hand (``python app.py``) it serves on 0.0.0.0:8080 (or ``endpoint``); deployed, the
installation tells it where to listen through its environment.
"""

from __future__ import annotations

from eas_core.runtime.custom import BaseProcessor

__all__ = ["BaseProcessor"]
