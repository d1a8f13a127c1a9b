"""A test processor that breaks on cue, so bakes and health probes have something to catch.

The model file is JSON: {"answer": "pong", "label": "v2", "fail_after": 3}
    ping   → the answer, until this process has answered ``fail_after`` pings (-1: never);
             then 500 "broken"
    label  → the label (which model serves)
"""

import json
import threading

import allspark


class FlakyProcessor(allspark.BaseProcessor):
    def initialize(self) -> None:
        with open(self.get_model_path()) as f:
            self.model = json.load(f)
        self.pings = 0
        self.lock = threading.Lock()

    def process(self, data: bytes) -> tuple[bytes, int]:
        if data == b"label":
            return self.model["label"].encode(), 200
        if data == b"ping":
            with self.lock:
                self.pings += 1
                broken = 0 <= self.model["fail_after"] < self.pings
            if broken:
                return b"broken", 500
            return self.model["answer"].encode(), 200
        return b"unknown request", 400


if __name__ == "__main__":
    FlakyProcessor(worker_threads=2).run()
