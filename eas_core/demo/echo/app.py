"""Echo: answers with the request body. The smallest processor, used by the demo and benchmarks."""

from __future__ import annotations

import allspark


class EchoProcessor(allspark.BaseProcessor):
    # No I/O, no locks, a few microseconds a call: the instance may run it on its event
    # loop instead of handing each call to a worker thread and back.
    inline_safe = True

    def initialize(self) -> None:
        self.prefix = b""

    def process(self, data: bytes) -> tuple[bytes, int]:
        return self.prefix + data, 200


if __name__ == "__main__":
    EchoProcessor(worker_threads=8).run()
