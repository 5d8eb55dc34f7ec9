"""The model zoo: registry and lookup. Adding a model = one module + one entry in MODELS.

Model modules import torch/transformers only in load(), so importing the registry stays fast.
"""
from __future__ import annotations

from ..errors import ServingbenchError
from .bart import BartLargeCnn
from .base import LoadedModel, ModelSpec, Output, Sample, Verdict, WeightsSource
from .efficientnet import EfficientNetLite0
from .resnet import ResNet50
from .wav2vec2 import Wav2Vec2, Wav2Vec2Truncated

MODELS: dict[str, type[ModelSpec]] = {
    spec.name: spec for spec in (ResNet50, EfficientNetLite0, Wav2Vec2, Wav2Vec2Truncated, BartLargeCnn)
}
SIZES = ("tiny", "real")

__all__ = ["MODELS", "SIZES", "LoadedModel", "ModelSpec", "Output", "Sample", "Verdict", "WeightsSource",
           "get_model", "model_names"]


def model_names() -> list[str]:
    return list(MODELS)


def get_model(name: str, size: str = "tiny", weights: str = "default", seed: int = 0) -> ModelSpec:
    """A model spec; `weights` is "default" (the model's default_weights), "random", "pretrained" or a directory."""
    spec_class = MODELS.get(name)
    if spec_class is None:
        raise ServingbenchError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    if size not in SIZES:
        raise ServingbenchError(f"unknown size {size!r}; choose one of: {', '.join(SIZES)}")
    default = getattr(spec_class, "default_weights", "random")  # a class attribute of every model here
    source = WeightsSource.parse(default if weights == "default" else weights, seed=seed)
    return spec_class(size=size, weights=source)  # type: ignore[arg-type]
