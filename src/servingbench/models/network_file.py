"""Your own network file (TorchScript or ONNX) served as a bare network: a tensor in, a tensor out.

Requests carry the input tensor in numpy's .npy format (dtype and shape included); the answer is the
network's first output, flattened, with its shape. The file is served as given: no runtime
conversion (server.runtime applies to models servingbench builds), weights are the file's.
"""
from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ServingbenchError
from .base import LoadedModel, Output, Sample
from .tasks import BareNetworkSpec

NETWORK_STEM = "network"  # save() copies the file in as network<suffix>


class OnnxNetwork:
    """An onnxruntime session called like a torch network: a tensor in, its first (or named) output out."""

    def __init__(self, path: Path, threads: int, input_name: str | None = None, output_name: str | None = None,
                 device: str = "cpu"):
        self.path, self.threads = path, threads
        self.session = self._session(device)
        self.input_name = input_name or self.session.get_inputs()[0].name
        self.output_name = output_name or self.session.get_outputs()[0].name

    def _session(self, device: str) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        return onnxruntime.InferenceSession(str(self.path), options, providers=_providers(device))

    def to(self, device: str, dtype: Any = None) -> "OnnxNetwork":
        """On a GPU: the same file in a CUDA session. The file's own precision stays (an ONNX graph isn't cast)."""
        if device != "cpu":
            self.session = self._session(device)
        return self

    def __call__(self, tensor: Any) -> Any:
        import torch

        from servingbench.devices import to_float32, to_host

        # float32 in, whatever run_network sent: onnxruntime copies to its device itself
        array = to_host(to_float32(tensor)).numpy()
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: array})[0])


def _providers(device: str) -> list[str]:
    """onnxruntime's execution providers for `device`; on a GPU its CUDA one must be there (onnxruntime-gpu)."""
    import onnxruntime

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise ServingbenchError(f"onnxruntime {onnxruntime.__version__} here has no CUDA execution provider: "
                                "pip install onnxruntime-gpu, or use server.runtime torchscript on the GPU")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class BareNetwork(LoadedModel):
    """No processing: the .npy body is the network's input; the first output is the answer."""

    def __init__(self, network: Any, source: Path | None, stacks_inputs: bool):
        self.network = network
        self.source = source  # the network file, copied by save(); None: processing only (load_processing)
        self.stacks_inputs = stacks_inputs  # type: ignore[misc]

    def preprocess(self, data: bytes) -> Any:
        import numpy as np
        import torch

        try:
            return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False).copy())
        except ValueError as exc:
            raise ValueError(f"the body is not a .npy array: {exc}") from exc

    def postprocess(self, output: Any) -> Output:
        first = output[0] if isinstance(output, (tuple, list)) else output
        return {"output": first.float().flatten().tolist(), "shape": list(first.shape)}

    untraceable_because = "it is a network file already: served as given"

    def traceable(self) -> None:
        return None

    def save_processing(self, directory: Path) -> Path:
        return Path(directory)  # nothing: the request is the network's input

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.source is None:
            raise ServingbenchError("a bare network's processing alone has no network file to save")
        shutil.copyfile(self.source, directory / f"{NETWORK_STEM}{self.source.suffix}")
        return directory


@dataclass
class NetworkFileModel(BareNetworkSpec):
    hub_id: ClassVar[str | None] = None
    default_weights: ClassVar[str] = "pretrained"  # the file's own weights

    def network_file(self) -> Path:
        """The file as the study gave it, or the copy save() put in a server's folder."""
        if self.weights.kind != "path":
            return Path(self.entry.network)  # type: ignore[arg-type]
        copies = sorted(Path(self.weights.path).glob(f"{NETWORK_STEM}.*"))  # type: ignore[arg-type]
        if not copies:
            raise ServingbenchError(f"{self.name}: no {NETWORK_STEM}.* in {self.weights.path}")
        return copies[0]

    def load(self) -> LoadedModel:
        import torch

        path = self.network_file()
        if not path.is_file():
            raise ServingbenchError(f"{self.name}: network file not found: {path}")
        try:
            if path.suffix == ".onnx":
                network: Any = OnnxNetwork(path, torch.get_num_threads())
            else:
                network = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # noqa: BLE001 - the runtime's own message says what is wrong with the file
            raise ServingbenchError(f"{self.name}: cannot load {path}: {type(exc).__name__}: {exc}") from exc
        return BareNetwork(network, path, self._batch_axis_free(network))

    def load_processing(self, directory: Path) -> LoadedModel:
        # The request is the network's input: no file needed (Triton's pre/postprocessing steps have none).
        return BareNetwork(None, None, self._batch_axis_free(None))

    def _batch_axis_free(self, network: Any) -> bool:
        """May inputs be stacked into one batch? Where the input spec says so (-1 first), or an ONNX file's
        first axis is symbolic; a TorchScript file can't tell, so never by default."""
        spec = self.entry.input
        if spec is not None and spec.shape:
            return spec.shape[0] == -1
        if isinstance(network, OnnxNetwork):
            return not isinstance(network.session.get_inputs()[0].shape[0], int)
        return False

    def samples(self) -> list[Sample]:
        samples = super().samples()
        spec = self.entry.input
        if spec is not None:
            for sample in samples:
                _check_input(self.name, sample, spec.dtype, spec.shape)
        return samples


def _check_input(model: str, sample: Sample, dtype: str | None, shape: list[int] | None) -> None:
    """A sample that doesn't fit the declared input is the user's mistake: say which and how."""
    import numpy as np

    array = np.load(io.BytesIO(sample.data), allow_pickle=False)
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise ServingbenchError(f"{model}: sample {sample.name} is {array.dtype}, the input is {dtype}")
    if shape is not None and (len(shape) != array.ndim or any(want not in (-1, got)
                                                               for want, got in zip(shape, array.shape))):
        raise ServingbenchError(f"{model}: sample {sample.name} has shape {list(array.shape)}, the input is {shape} "
                                "(-1: any size)")
