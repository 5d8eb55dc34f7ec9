"""The model as the Python frameworks serve it: one folder, written by the adapter, loaded by the server.

The folder holds the model's processing files (processor, tokenizer, labels), the network in the
study's chosen runtime and `servingbench.json` (a ServedModelManifest). Every Python framework's
server code (TorchServe's handler, the FastAPI app, Ray Serve's deployment, ...) loads it with
`load_served_model` and answers with `predict_batch`, so all of them run the same model the same way
and differ only in what the framework puts around it.

Runtimes (`server.runtime`):
  eager        the PyTorch model as built (from_pretrained of the saved weights)
  torchscript  the network traced to TorchScript, as the study exported it (the default)
  onnxruntime  the network exported to ONNX, run by an onnxruntime session
A network that can't be traced or exported (BART's generate() loop) is served eager whatever the
setting; the manifest says which runtime was used and why.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from servingbench.models.entry import ModelEntry

MANIFEST = "servingbench.json"
Runtime = Literal["eager", "torchscript", "onnxruntime"]
ONNX_INPUT, ONNX_OUTPUT = "input", "output"


class ServedModelManifest(BaseModel):
    """What the served-model folder holds; read by the server process."""

    model: ModelEntry  # rebuilt by get_model in the server: the zoo's name or the study's own definition
    size: str
    threads: int
    runtime: Runtime = "eager"
    network_file: str | None = None  # in the folder; None for eager (the saved weights)
    device: str = "cpu"  # cpu or cuda: the server sees only the study's GPU (devices.py)
    dtype: str = "float32"  # inside the network; float32 at its boundary
    note: str = ""  # why the runtime differs from the one asked for


def write_served_model(model, loaded, directory: Path, runtime: Runtime, threads: int) -> ServedModelManifest:
    """Write the folder for `model` (a ModelSpec) and its LoadedModel in `runtime`; returns its manifest."""
    from servingbench.errors import UnsupportedModel
    from servingbench.exports.onnx import export_onnx
    from servingbench.exports.torchscript import export_torchscript

    directory.mkdir(parents=True, exist_ok=True)
    manifest = ServedModelManifest(model=model.reference(), size=model.size, threads=threads, device=loaded.device,
                                   dtype=loaded.dtype)
    if runtime != "eager":
        try:
            if runtime == "torchscript":
                network = export_torchscript(model, loaded, directory / "model.pt")
            else:
                network = export_onnx(model, loaded, directory / "model.onnx", ONNX_INPUT, ONNX_OUTPUT)
            loaded.save_processing(directory)
            manifest = manifest.model_copy(update={"runtime": runtime, "network_file": network.name})
        except UnsupportedModel as exc:
            manifest.note = f"{runtime} asked for, eager served: {exc}"
    if manifest.runtime == "eager":
        loaded.save(directory)
    (directory / MANIFEST).write_text(manifest.model_dump_json(indent=1))
    return manifest


def read_manifest(directory: Path) -> ServedModelManifest:
    return ServedModelManifest.model_validate_json((Path(directory) / MANIFEST).read_text())


def load_served_model(directory: Path | str, device: str | None = None) -> Any:
    """The LoadedModel the folder describes, in its runtime, on its device (or `device`: the GPU a framework hands
    a worker, e.g. cuda:1), with the manifest's torch thread count."""
    import torch

    from servingbench.models import get_model
    from servingbench.models.network_file import OnnxNetwork

    directory = Path(directory)
    manifest = read_manifest(directory)
    device = device or manifest.device
    torch.set_num_threads(manifest.threads)
    spec = get_model(manifest.model, manifest.size, str(directory))
    if manifest.runtime == "eager":
        return spec.load().on_device(device, manifest.dtype)
    network_path = directory / str(manifest.network_file)
    processing = spec.load_processing(directory)
    if manifest.runtime == "onnxruntime":  # float32 in and out, its session on the device
        return processing.with_network(OnnxNetwork(network_path, manifest.threads, ONNX_INPUT, ONNX_OUTPUT, device))
    # traced on the device in the dtype (exports/precision.py): its inputs go there, float32
    network = torch.jit.load(str(network_path), map_location=device).eval()
    return processing.with_network(network).placed(device)


def predict_batch(loaded: Any, bodies: list[bytes]) -> list[dict]:
    """One task output per request body; inputs of equal shape run through the network together."""
    import torch

    from servingbench.devices import to_host

    with torch.inference_mode():
        inputs = [loaded.preprocess(b) for b in bodies]
        if len(inputs) > 1 and loaded.stacks_inputs and all(isinstance(x, torch.Tensor) and x.shape == inputs[0].shape
                                                             for x in inputs):
            outputs = to_host(loaded.run_network(torch.cat(inputs)))
            return [loaded.postprocess(outputs[i:i + 1]) for i in range(len(inputs))]
        return [loaded.postprocess(to_host(loaded.run_network(x))) for x in inputs]
