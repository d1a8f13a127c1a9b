"""A test processor that runs whole batches (``rpc.batching``) and says what it saw.

Each answer is JSON ``{"echo": <the body>, "batch": <how many requests its batch held>,
"pid": <the worker process>}``, so a caller learns the size of the batch it was part of.

    bad     → 400 for that request only (the others of its batch are answered)
    boom    → process_batch raises: every request of that batch fails
    sleep:<ms> → the batch sleeps that long before answering
"""

import json
import os
import time

import allspark


class BatchProcessor(allspark.BaseProcessor):
    def process(self, data):
        # Used only when the service does not batch.
        return self.process_batch([data])[0]

    def process_batch(self, data_list):
        if b"boom" in data_list:
            raise RuntimeError(f"the batch of {len(data_list)} held a boom")
        for data in data_list:
            if data.startswith(b"sleep:"):
                time.sleep(int(data[6:]) / 1000)
        answers = []
        for data in data_list:
            if data == b"bad":
                answers.append((b"this item is bad", 400))
                continue
            body = {"echo": data.decode(), "batch": len(data_list), "pid": os.getpid()}
            answers.append((json.dumps(body).encode(), 200))
        return answers


if __name__ == "__main__":
    BatchProcessor().run()
