"""A test processor for the data path's edge cases.

    poison          → kills its process (os._exit), once no other call is inside it
    size:<...>      → the body's length in bytes (large uploads without a large answer)
    hold:<ms>:<...> → sleeps, then the body's length (keeps a large body buffered a while)
    status:<n>:<x>  → answers <x> with status n, whatever n is
Any other body is echoed back.

The poison exits only when it is the only call in the process and the event loop is
waiting for I/O, so the only request its death takes with it is its own: a call the
instance had already read when it died is lost whatever the gateway does, and would make a
count of failed callers depend on timing instead of on how the gateway treats the poison.
(Bytes that arrive meanwhile stay unread in the socket: the system resets the connection
when the process dies, and the gateway sends that call to another instance.)
"""

import os
import sys
import threading
import time

import allspark

POISON = b"poison"


def event_loop_waiting():
    """Is the event loop (the main thread) waiting in C for I/O, no call half-read in Python?

    Looking at another thread's frames needs the GIL, which that thread gives up while it
    polls, so its innermost Python frame is then asyncio's runner, not the HTTP server.
    """
    frame = sys._current_frames().get(threading.main_thread().ident)
    return frame is not None and frame.f_code.co_filename.endswith(
        os.path.join("asyncio", "runners.py")
    )


class EdgeProcessor(allspark.BaseProcessor):
    def initialize(self):
        self.lock = threading.Lock()
        self.inside = 0

    def process(self, data):
        with self.lock:
            self.inside += 1
        try:
            return self.answer(data)
        finally:
            with self.lock:
                self.inside -= 1

    def answer(self, data):
        if data == POISON:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                with self.lock:
                    if self.inside == 1 and event_loop_waiting():
                        os._exit(13)
                time.sleep(0.0005)
            os._exit(13)
        if data.startswith(b"size:"):
            return str(len(data)).encode(), 200
        if data.startswith(b"hold:"):
            time.sleep(int(data.split(b":", 2)[1]) / 1000)
            return str(len(data)).encode(), 200
        if data.startswith(b"status:"):
            _, status, rest = data.split(b":", 2)
            return rest, int(status)
        return data, 200


if __name__ == "__main__":
    EdgeProcessor(worker_threads=8).run()
