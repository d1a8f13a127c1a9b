"""Make the model of examples/tensorflow: a small Keras classifier saved as a SavedModel with
the signature ``predict_images`` (``images`` float32 [-1, 4] → ``scores`` [-1, 3]).

    pip install -e '.[tensorflow]'
    cd examples/tensorflow && python make_model.py      # writes ./model/
    eascmd create service.json
    curl http://127.0.0.1:8080/api/predict/tf_example -H 'Authorization: <token>'  # signature
    # POST a tf_request.proto PredictRequest, e.g. with the SDK:
    #   r = TFRequest("predict_images")
    #   r.add_feed("images", [1, 4], TFRequest.DT_FLOAT, [1, 2, 3, 4])
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import tensorflow as tf


def main(out: Path) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,), name="images"),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="images")])
    def predict_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": model(images)}

    tf.saved_model.save(model, str(out), signatures={"predict_images": predict_images})


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "model")
