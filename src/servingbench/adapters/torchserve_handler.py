"""The TorchServe handler servingbench packages into every archive.

TorchServe's workers run this with the Python that launched TorchServe, where servingbench is
installed, so the handler runs the model's own pre- and postprocessing (decode + resize +
normalise, feature extraction, tokenisation) server side, as the study's custom handlers did,
around a TorchScript network, or the eager model for BART (generate() can't be traced).
`servingbench.json` in the archive says which model, size and network it holds.
"""
from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "servingbench.json"
_service = None


class Service:
    def __init__(self, model_dir: Path):
        import torch

        from servingbench.models import get_model

        manifest = json.loads((model_dir / MANIFEST).read_text())
        torch.set_num_threads(manifest["threads"])
        spec = get_model(manifest["model"], manifest["size"], str(model_dir))
        if manifest["network"] == "torchscript":
            network = torch.jit.load(str(model_dir / manifest["network_file"]), map_location="cpu")
            self.model = spec.load_processing(model_dir).with_network(network.eval())
        else:
            self.model = spec.load()

    def handle(self, requests: list[dict]) -> list[dict]:
        """One answer per request of the batch; equal input shapes run through the network together."""
        import torch

        bodies = [_body(r) for r in requests]
        with torch.inference_mode():
            inputs = [self.model.preprocess(b) for b in bodies]
            if len(inputs) > 1 and all(isinstance(x, torch.Tensor) and x.shape == inputs[0].shape for x in inputs):
                outputs = self.model.network(torch.cat(inputs))
                return [self.model.postprocess(outputs[i:i + 1]) for i in range(len(inputs))]
            return [self.model.postprocess(self.model.network(x)) for x in inputs]


def _body(request: dict) -> bytes:
    """TorchServe hands the body as bytes/bytearray, or as str when the request was text."""
    body = request.get("data") if request.get("data") is not None else request.get("body")
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def handle(data, context):
    """TorchServe's entry point; data is None on the worker's first (initialisation) call."""
    global _service
    if _service is None:
        _service = Service(Path(context.system_properties["model_dir"]))
    if data is None:
        return None
    return _service.handle(data)
