"""The framework registry. A new framework is one module plus one entry here (or an entry point
in the `servingbench.adapters` group of another package)."""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from servingbench.adapters.base import Adapter
from servingbench.config import Study
from servingbench.errors import ServingbenchError
from servingbench.pipeline import Pipeline

# name -> "module:Class", imported on use so a framework's heavy imports cost nothing elsewhere.
ADAPTERS: dict[str, str] = {
    "reference": "servingbench.adapters.reference:ReferenceAdapter",
    "endpoint": "servingbench.adapters.endpoint:EndpointAdapter",
    "torchserve": "servingbench.adapters.torchserve:TorchServeAdapter",
    "triton": "servingbench.adapters.triton:TritonAdapter",
    "tfserving": "servingbench.adapters.tfserving:TFServingAdapter",
    "rayserve": "servingbench.adapters.rayserve:RayServeAdapter",
    "bentoml": "servingbench.adapters.bentoml:BentoMLAdapter",
    "litserve": "servingbench.adapters.litserve:LitServeAdapter",
    "mlserver": "servingbench.adapters.mlserver:MLServerAdapter",
    "kserve": "servingbench.adapters.kserve:KServeAdapter",
    "mlflow": "servingbench.adapters.mlflow:MLflowAdapter",
    "fastapi": "servingbench.adapters.fastapi:FastAPIAdapter",
}


def _registry() -> dict[str, str]:
    found = dict(ADAPTERS)
    for ep in entry_points(group="servingbench.adapters"):
        found.setdefault(ep.name, ep.value)
    return found


def adapter_names() -> list[str]:
    return list(_registry())


def adapter_class(name: str) -> type[Adapter]:
    registry = _registry()
    if name not in registry:
        raise ServingbenchError(f"unknown framework '{name}'; known: {', '.join(registry)}")
    module, _, cls = registry[name].partition(":")
    return getattr(import_module(module), cls)


def get_adapter(name: str, study: Study, pipeline: Pipeline | None = None) -> Adapter:
    """`pipeline`: the one it serves, the study's first by default."""
    return adapter_class(name)(study, pipeline)
