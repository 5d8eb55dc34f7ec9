"""The network as exports carry it on a GPU or in half precision: float32 in and out, `device` and `dtype` inside.

Traced with it, a TorchScript or ONNX file takes what preprocessing gives and gives what postprocessing takes, so
every framework's server (and Triton's pytorch backend, which casts nothing) feeds it the same tensors as on the CPU.
"""
from __future__ import annotations

from typing import Any

import torch

from servingbench.devices import to_device, to_float32


class AtPrecision(torch.nn.Module):
    def __init__(self, network: torch.nn.Module, device: str, dtype: str):
        super().__init__()
        self.network, self.device, self.dtype = network, device, dtype

    def forward(self, tensor: torch.Tensor) -> Any:
        return to_float32(self.network(to_device(tensor, self.device, self.dtype)))


def exportable(loaded: Any) -> torch.nn.Module | None:
    """What exports trace: the model's traceable network, wrapped where it runs off the CPU or below float32."""
    module = loaded.traceable()
    if module is None or (loaded.device, loaded.dtype) == ("cpu", "float32"):
        return module
    return AtPrecision(module, loaded.device, loaded.dtype)
