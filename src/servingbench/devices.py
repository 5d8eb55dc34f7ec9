"""Where a study's models run: `server.device` (auto, cpu, cuda, cuda:N) and `server.dtype`, resolved against the
GPUs this host has.

A study runs on one device. For a GPU, this process and every server it starts see only that GPU
(CUDA_VISIBLE_DEVICES, set before CUDA starts), so inside them it is always `cuda` (cuda:0): a network traced on it
carries no other GPU's index, and TorchServe's or Triton's GPU 0 is the chosen one. On the CPU, servers see no GPU
at all, so a framework that would take one by itself (TF Serving, TorchServe) can't.

GPUs are found through NVML (nvidia-ml-py), which needs no CUDA context; CUDA itself must still start after the
variable is set.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any, Literal

from servingbench.errors import ServingbenchError

DEVICE_WORDS = "auto, cpu, cuda or cuda:N"
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
Dtype = Literal["float32", "float16", "bfloat16"]
VISIBLE = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class Gpu:
    index: int  # NVML's (physical) index, what CUDA_VISIBLE_DEVICES names
    name: str
    memory_mib: int


@dataclass(frozen=True)
class GpuHost:
    """The GPUs this process may use (those CUDA_VISIBLE_DEVICES lets through, in its order) and the versions."""

    gpus: tuple[Gpu, ...]
    driver: str | None
    cuda_driver: str | None  # the CUDA version the driver supports
    torch_cuda: str | None  # the CUDA torch was built with; None: a CPU build (or no torch)
    none_because: str = ""  # why no GPU was found

    def describe(self) -> str:
        """What was found, in words, for the error of a `cuda` asked for in vain and `servingbench list`."""
        if self.gpus:
            return ", ".join(f"cuda:{i} {g.name} ({g.memory_mib} MiB)" for i, g in enumerate(self.gpus))
        return f"no GPU: {self.none_because}"

    def as_json(self) -> dict[str, Any]:
        return {"gpus": [{"device": f"cuda:{i}", "name": g.name, "memory_mib": g.memory_mib, "nvml_index": g.index}
                         for i, g in enumerate(self.gpus)],
                "driver": self.driver, "cuda_driver": self.cuda_driver, "torch_cuda": self.torch_cuda}


def _torch_cuda() -> tuple[str | None, str]:
    """torch's CUDA version and, without one, why, in words."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if torch.version.cuda is None:
        return None, f"torch {torch.__version__} is a CPU build"
    return torch.version.cuda, ""


@functools.cache
def gpu_host() -> GpuHost:
    """The GPUs NVML sees, filtered and ordered by CUDA_VISIBLE_DEVICES as CUDA would; read once per process."""
    torch_cuda, torch_why = _torch_cuda()
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - no package, no driver, no GPU: each means the same here
        reason = str(exc) or type(exc).__name__
        return GpuHost((), None, None, torch_cuda,
                       f"no NVIDIA driver answers (NVML: {reason})" + (f"; {torch_why}" if torch_why else ""))
    found = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        found.append(Gpu(index, _text(name), pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20))
    driver = _text(pynvml.nvmlSystemGetDriverVersion())
    version = pynvml.nvmlSystemGetCudaDriverVersion()
    cuda_driver = f"{version // 1000}.{version % 1000 // 10}"
    by_index = {g.index: g for g in found}
    gpus = [by_index[i] for i in visible_indices(list(by_index), os.environ.get(VISIBLE))]
    if gpus and torch_cuda is None:  # a GPU torch can't use is no GPU for servingbench
        return GpuHost((), driver, cuda_driver, None, f"{len(gpus)} GPU(s) here, but {torch_why}")
    why = "" if gpus else (f"{VISIBLE}={os.environ.get(VISIBLE)!r} hides them" if found
                           else "the NVIDIA driver lists none")
    return GpuHost(tuple(gpus), driver, cuda_driver, torch_cuda, why)


def _text(value: str | bytes) -> str:
    """NVML's strings: bytes in older nvidia-ml-py releases."""
    return value.decode() if isinstance(value, bytes) else value


def visible_indices(indices: list[int], variable: str | None) -> list[int]:
    """The NVML indices CUDA_VISIBLE_DEVICES (`variable`) lets through, in its order (UUIDs: taken as all)."""
    if variable is None:
        return indices
    names = [n.strip() for n in variable.split(",") if n.strip()]
    if not all(n.isdigit() for n in names):
        return indices if names else []
    return [int(n) for n in names if int(n) in indices]


@dataclass(frozen=True)
class Placement:
    """The device a study runs on: `asked` as the study says it, `gpu` the one chosen (None: the CPU)."""

    asked: str
    gpu: Gpu | None
    dtype: Dtype = "float32"
    number: int = 0  # the GPU's N in cuda:N as this process counts them (CUDA_VISIBLE_DEVICES' order)

    @property
    def torch_device(self) -> str:
        """What this process and the servers call it (the chosen GPU is the only one they see)."""
        return "cuda" if self.gpu else "cpu"

    @property
    def label(self) -> str:
        """For cells, the console and reports: "cpu", "cuda:0 (NVIDIA H200)", with a dtype other than float32."""
        where = f"cuda:{self.number} ({self.gpu.name})" if self.gpu else "cpu"
        return where if self.dtype == "float32" else f"{where}, {self.dtype}"

    def server_env(self) -> dict[str, str]:
        """What every server's environment gets: the chosen GPU only, or none."""
        return {VISIBLE: str(self.gpu.index) if self.gpu else ""}


def place(asked: str, dtype: Dtype = "float32") -> Placement:
    """`server.device` resolved here: auto is the first visible GPU or the CPU; cuda[:N] without it is an error."""
    if asked == "cpu":
        return Placement(asked, None, dtype)
    host = gpu_host()
    if asked == "auto":
        return Placement(asked, host.gpus[0] if host.gpus else None, dtype)
    number = int(asked.partition(":")[2] or 0)
    if not host.gpus:
        raise ServingbenchError(f"server.device {asked}: no GPU here: {host.none_because}; use device cpu or auto")
    if number >= len(host.gpus):
        raise ServingbenchError(f"server.device {asked}: no such GPU; this host has {host.describe()}")
    return Placement(asked, host.gpus[number], dtype, number)


def pin(placement: Placement) -> None:
    """Make this process see only the chosen GPU (or none), before anything starts CUDA in it."""
    os.environ[VISIBLE] = placement.server_env()[VISIBLE]


def torch_dtype(dtype: str) -> Any:
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


def _each_tensor(value: Any, convert: Any) -> Any:
    """`convert` applied to a tensor, or to each tensor of a tuple/list (a network's outputs); others as they are."""
    import torch

    if isinstance(value, torch.Tensor):
        return convert(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_each_tensor(v, convert) for v in value)
    return value


def to_device(value: Any, device: str, dtype: str) -> Any:
    """Tensors on `device`, float32 ones in `dtype`; others as they are."""
    import torch

    return _each_tensor(value, lambda t: t.to(device, torch_dtype(dtype)) if t.dtype == torch.float32
                        else t.to(device))


def to_float32(value: Any) -> Any:
    """Half-precision tensors as float32, where they are: the network's boundary."""
    import torch

    return _each_tensor(value, lambda t: t.float() if t.dtype in (torch.float16, torch.bfloat16) else t)


def to_host(value: Any) -> Any:
    """Tensors back in this process's memory, for postprocessing."""
    return _each_tensor(value, lambda t: t.cpu())


def synchronize(device: str) -> None:
    """Wait for the device's queued work: CUDA runs asynchronously, a timer read before this would lie."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def load_placed(model: Any, placement: Placement) -> Any:
    """`model` (a ModelSpec) built in this process on the study's device: this process pinned to it first."""
    pin(placement)
    return model.load().on_device(placement.torch_device, placement.dtype)
