"""The model registry: the zoo, plugins' entry points and models defined in a study file.

A model is registered as "module:Class" (a ModelSpec subclass): the zoo in MODELS below, another
package through an entry point in the `servingbench.models` group, exactly the same way. Model
modules import torch/transformers only in load(), so importing the registry stays fast.
"""
from __future__ import annotations

import importlib.util
import sys
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

from ..errors import ServingbenchError
from .base import LoadedModel, ModelSpec, Output, Sample, Verdict, WeightsSource
from .entry import ModelEntry

MODELS: dict[str, str] = {
    "resnet50": "servingbench.models.resnet:ResNet50",
    "efficientnet-lite0": "servingbench.models.efficientnet:EfficientNetLite0",
    "wav2vec2": "servingbench.models.wav2vec2:Wav2Vec2",
    "wav2vec2-truncated": "servingbench.models.wav2vec2:Wav2Vec2Truncated",
    "bart-large-cnn": "servingbench.models.bart:BartLargeCnn",
}
SIZES = ("tiny", "real")
ENTRY_POINT_GROUP = "servingbench.models"

__all__ = ["MODELS", "SIZES", "LoadedModel", "ModelEntry", "ModelSpec", "Output", "Sample", "Verdict",
           "WeightsSource", "get_model", "model_class", "registered_models"]


def registered_models() -> dict[str, str]:
    """name -> "module:Class": the zoo, then every installed plugin's entry points."""
    found = dict(MODELS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def model_class(entry: ModelEntry) -> type[ModelSpec]:
    """The ModelSpec class an entry names or defines."""
    if entry.kind == "hf":
        from .custom_hf import HFTaskModel

        return HFTaskModel
    if entry.kind == "network":
        from .network_file import NetworkFileModel

        return NetworkFileModel
    if entry.kind == "python":
        return _import_spec(entry.python, f"model {entry.name!r}")  # type: ignore[arg-type]
    registry = registered_models()
    if entry.name not in registry:
        raise ServingbenchError(f"unknown model {entry.name!r}; registered: {', '.join(registry)} "
                                "(or define your own in the study file: hf, network or python)")
    return _import_spec(registry[entry.name], f"model {entry.name!r}")


def _import_spec(reference: str, what: str) -> type[ModelSpec]:
    """A ModelSpec subclass from "package.module:Class" or "/path/to/file.py:Class"."""
    target, _, attribute = reference.rpartition(":")
    if not target or not attribute:
        raise ServingbenchError(f"{what}: {reference!r} must look like 'package.module:Class' or 'file.py:Class'")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ServingbenchError(f"{what}: no file {path}")
            module_name = f"servingbench_user_{path.stem}"
            module = sys.modules.get(module_name)  # one class per file, however often it is named
            if module is None:
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                sys.modules[module_name] = module  # dataclasses look their module up by name
                spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = import_module(target)
        found = getattr(module, attribute)
    except ServingbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raised is the reason
        raise ServingbenchError(f"{what}: cannot import {reference}: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, ModelSpec)):
        raise ServingbenchError(f"{what}: {reference} is not a servingbench.models.ModelSpec subclass")
    return found


def get_model(entry: ModelEntry | str, size: str = "tiny", weights: str = "default", seed: int = 0,
              dtype: str = "float32") -> ModelSpec:
    """A model spec; `weights` is "default" (the model's default_weights), "random", "pretrained" or a directory;
    `dtype`: the precision it is served in."""
    entry = ModelEntry(name=entry) if isinstance(entry, str) else entry
    if size not in SIZES:
        raise ServingbenchError(f"unknown size {size!r}; choose one of: {', '.join(SIZES)}")
    spec_class = model_class(entry)
    default = getattr(spec_class, "default_weights", "random")
    source = WeightsSource.parse(default if weights == "default" else weights, seed=seed)
    return spec_class(size=size, weights=source, entry=entry, dtype=dtype)  # type: ignore[arg-type]
