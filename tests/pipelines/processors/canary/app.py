"""A test processor whose model says how good it is, for canary analysis under real traffic.

The model file is JSON: {"label": "v2", "error_every": 20, "delay_ms": 0}
    any request → the label (which model answered), after ``delay_ms``;
                  every ``error_every``-th request of this process (0: never) → 500 "broken"
"""

import json
import threading
import time

import allspark


class CanaryProcessor(allspark.BaseProcessor):
    def initialize(self) -> None:
        with open(self.get_model_path()) as f:
            self.model = json.load(f)
        self.calls = 0
        self.lock = threading.Lock()

    def process(self, data: bytes) -> tuple[bytes, int]:
        delay = self.model.get("delay_ms", 0)
        if delay:
            time.sleep(delay / 1000)
        every = self.model.get("error_every", 0)
        # The pipeline's smoke ping ("smoke") always passes, as a model broken only on real
        # traffic does; callers' calls are counted, and every error_every-th of them fails.
        if data == b"smoke":
            return self.model["label"].encode(), 200
        with self.lock:
            self.calls += 1
            broken = every > 0 and self.calls % every == 0
        if broken:
            return b"broken", 500
        return self.model["label"].encode(), 200


if __name__ == "__main__":
    CanaryProcessor(worker_threads=4).run()
