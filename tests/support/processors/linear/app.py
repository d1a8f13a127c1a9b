"""A test processor whose answers its model decides: the model file is JSON
``{"name": "v1", "scale": 2.0, "delay_ms": 0, "changed_every": 0}``; a request body is a
number x, the answer ``{"y": x * scale, "model": name}`` after ``delay_ms`` (a slow or hung
candidate). With ``changed_every`` k, y is one more for every whole x divisible by k (a model
that differs on a known share of inputs). A body that is not a number answers 400."""

import json
import time

import allspark


class LinearProcessor(allspark.BaseProcessor):
    def initialize(self):
        with open(self.get_model_path()) as f:
            model = json.load(f)
        self.name = str(model.get("name", ""))
        self.scale = float(model.get("scale", 1.0))
        self.delay = float(model.get("delay_ms", 0)) / 1000
        self.changed_every = int(model.get("changed_every", 0))

    def process(self, data):
        try:
            x = float(data)
        except ValueError:
            return b"the body must be a number", 400
        if self.delay:
            time.sleep(self.delay)
        y = x * self.scale
        if self.changed_every and x.is_integer() and int(x) % self.changed_every == 0:
            y += 1
        return json.dumps({"y": y, "model": self.name}).encode(), 200


if __name__ == "__main__":
    LinearProcessor(worker_threads=4).run()
