"""ONNX through torch's TorchScript-based exporter (the dynamo one needs onnxscript), every axis dynamic."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from servingbench.errors import UnsupportedModel, describe
from servingbench.exports.precision import exportable
from servingbench.models.base import LoadedModel, ModelSpec


def export_onnx(model: ModelSpec, loaded: LoadedModel, path: Path, input_name: str, output_name: str) -> Path:
    module = exportable(loaded)  # on the model's device, in its dtype
    if module is None:
        raise UnsupportedModel(f"{model.name}'s network can't be exported to ONNX: {loaded.untraceable_because}")
    example = loaded.preprocess(model.samples()[0].data)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # Tracing reads every property of the module, transformers' deprecated alias included: not the user's concern.
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        try:
            with torch.inference_mode():
                rank_out = module(example).dim()
            torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=[input_name],
                              output_names=[output_name],
                              dynamic_axes={input_name: {i: f"in{i}" for i in range(example.dim())},
                                            output_name: {i: f"out{i}" for i in range(rank_out)}})
        except Exception as exc:  # noqa: BLE001 - the exporter's own message is the reason
            raise UnsupportedModel(f"{model.name}'s network can't be exported to ONNX: {describe(exc)}") from exc
    return path
