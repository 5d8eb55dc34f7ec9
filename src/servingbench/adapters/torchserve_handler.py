"""The TorchServe handler servingbench packages into every archive.

TorchServe's workers run this with the Python that launched TorchServe, where servingbench is
installed, so the handler runs the model's own pre- and postprocessing (decode + resize +
normalise, feature extraction, tokenisation) server side, as the study's custom handlers did,
around the network in the study's runtime (TorchScript by default; BART eager: generate() can't be
traced). The archive's files are a served-model folder (served_model.py).
"""
from __future__ import annotations

from pathlib import Path

_model = None


def _body(request: dict) -> bytes:
    """TorchServe hands the body as bytes/bytearray, or as str when the request was text."""
    body = request.get("data") if request.get("data") is not None else request.get("body")
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def handle(data, context):
    """TorchServe's entry point; data is None on the worker's first (initialisation) call."""
    from servingbench.adapters.served_model import load_served_model, predict_batch

    global _model
    if _model is None:
        properties = context.system_properties
        gpu = properties.get("gpu_id")  # set by TorchServe for GPU workers (number_of_gpu > 0)
        _model = load_served_model(Path(properties["model_dir"]), None if gpu is None else f"cuda:{gpu}")
    if data is None:
        return None
    return predict_batch(_model, [_body(r) for r in data])
