"""TorchScript by tracing, as the study exported its models (Listing 1)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from servingbench.errors import UnsupportedModel, describe
from servingbench.exports.precision import exportable
from servingbench.models.base import LoadedModel, ModelSpec


def can_trace(loaded: LoadedModel) -> bool:
    return loaded.traceable() is not None


def export_torchscript(model: ModelSpec, loaded: LoadedModel, path: Path) -> Path:
    """Trace the network on the model's first sample and save it; the trace is checked on that sample."""
    module = exportable(loaded)  # on the model's device, in its dtype
    if module is None:
        raise UnsupportedModel(f"{model.name}'s network can't be traced: {loaded.untraceable_because}")
    example = loaded.preprocess(model.samples()[0].data)
    # The tracer warns that shape checks become constants (channels, batch of one): expected here,
    # and the served outputs are compared with the eager model before any load.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # Tracing reads every property of the module, transformers' deprecated alias included: not the user's concern.
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        try:
            traced = torch.jit.trace(module, example, check_trace=False)
        except Exception as exc:  # noqa: BLE001 - the tracer's own message is the reason
            raise UnsupportedModel(f"{model.name}'s network can't be traced to TorchScript: {describe(exc)}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(path))
    return path
