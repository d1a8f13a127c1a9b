"""Make the model of examples/pytorch: a TorchScript MLP (``forward(x)``, x float32 [N, 4]
→ softmax scores [N, 3]).

    pip install -e '.[torch]'
    cd examples/pytorch && python make_model.py         # writes ./model.pt
    eascmd create service.json
    # POST a pytorch_predict.proto PredictRequest, e.g. with the SDK:
    #   r = TorchRequest(); r.add_feed(0, [1, 4], TorchRequest.DT_FLOAT, [1, 2, 3, 4])
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=1)


def main(out: Path) -> None:
    torch.manual_seed(0)
    torch.jit.script(MLP().eval()).save(str(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "model.pt")
