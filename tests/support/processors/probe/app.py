"""A test processor whose behaviour the request chooses.

    echo:<text>   → <text>                 pid       → this worker process's pid
    pid_after:<ms> → sleeps, then the pid
    sleep:<ms>    → sleeps, then "slept"    raise     → raises (the instance keeps running)
    exit          → kills the process       status:<n> → answers with status n
    whoami        → JSON: service version, model text, model config, instance id
    hang          → never returns (its worker thread is stuck until the process dies)
Any other body is echoed back.
"""

import json
import os
import threading
import time

import allspark

NEVER = threading.Event()  # nobody sets it


class ProbeProcessor(allspark.BaseProcessor):
    def initialize(self):
        self.model_text = ""
        path = self.get_model_path()
        if path and os.path.isfile(path):
            with open(path) as f:
                self.model_text = f.read().strip()
        if self.model_text == "fail-initialize":
            raise RuntimeError("this model refuses to load")
        if self.model_text.startswith("slow-initialize:"):
            time.sleep(float(self.model_text.split(":")[1]))

    def process(self, data):
        if data.startswith(b"echo:"):
            return data[5:], 200
        if data == b"pid":
            return str(os.getpid()).encode(), 200
        if data.startswith(b"pid_after:"):
            time.sleep(int(data[10:]) / 1000)
            return str(os.getpid()).encode(), 200
        if data.startswith(b"sleep:"):
            time.sleep(int(data[6:]) / 1000)
            return b"slept", 200
        if data == b"raise":
            raise ValueError("the processor was asked to raise")
        if data == b"hang":
            NEVER.wait()
        if data == b"exit":
            os._exit(17)
        if data.startswith(b"status:"):
            return b"custom status", int(data[7:])
        if data == b"whoami":
            return json.dumps(
                {
                    "version": os.environ.get("EAS_VERSION"),
                    "model": self.model_text,
                    "config": self.get_model_config(),
                    "instance": os.environ.get("EAS_INSTANCE_ID"),
                }
            ), 0
        return data, 200


if __name__ == "__main__":
    ProbeProcessor(worker_threads=4).run()
