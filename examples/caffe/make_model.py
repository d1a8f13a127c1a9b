"""Make the model of examples/caffe: a deploy prototxt (Input ``data`` [1, 4] → InnerProduct
(3) → Softmax ``prob``) and its caffemodel, written with protobuf from the NetParameter
messages in processors/wire/caffe_net.proto (no Caffe installation needed).

    pip install -e '.[caffe]'
    cd examples/caffe && python make_model.py           # writes ./model/
    eascmd create service.json                          # model_config names the two files
    # POST a caffe.proto (package caffe.eas) PredictRequest:
    #   input_name: "data", input_data { shape { dim: 1 dim: 4 } data: [1, 2, 3, 4] }
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from processors.wire import caffe_net_pb2

DEPLOY = """name: "example"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    net = caffe_net_pb2.NetParameter(name="example")
    layer = net.layer.add(name="fc", type="InnerProduct", bottom=["data"], top=["fc"])
    layer.inner_product_param.num_output = 3
    for value in (rng.normal(size=(3, 4)), rng.normal(size=(3,))):  # weights [out, in], bias
        blob = layer.blobs.add()
        blob.shape.dim.extend(value.shape)
        blob.data.extend(value.astype(np.float32).ravel().tolist())
    out.mkdir(parents=True, exist_ok=True)
    (out / "deploy.prototxt").write_text(DEPLOY)
    (out / "example.caffemodel").write_bytes(net.SerializeToString())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "model")
