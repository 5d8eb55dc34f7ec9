"""transformers models from any weights source, always through `from_pretrained`.

Random weights are built once per (architecture, config, seed), saved with `save_pretrained` into
the cache and loaded back like any local model: the real loading path is exercised, and the
real-size BART (~15 s to initialise, 1.6 GB to write) is built only once.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import logging as transformers_logging

from ..atomic import atomic_directory
from ..errors import ServingbenchError
from .base import LoadedModel, ModelSpec
from .cache import cache_dir

# servingbench shows its own progress; transformers' per-load bars would flood logs and the console.
transformers_logging.disable_progress_bar()

CACHE_VERSION = "1"  # bump when the processor builders change, to rebuild cached random models


class Logits(torch.nn.Module):
    """A transformers model as a network: a tensor in, its logits (or another output, e.g. an encoder's
    last_hidden_state) out, so that torch.jit.trace and torch.onnx.export see plain tensors rather than
    a ModelOutput."""

    def __init__(self, model: PreTrainedModel, output: str = "logits"):
        super().__init__()
        self.model = model
        self.output = output
        self.eval()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return getattr(self.model(inputs), self.output)


class HFModel(LoadedModel):
    """Processing by a transformers processor (image processor, feature extractor or tokenizer) around a
    network that wraps a transformers model as `network.model` (None: processing only)."""

    def __init__(self, network: torch.nn.Module | None, processor: Any):
        self.network = network
        self.processor = processor

    def save_processing(self, directory: Path) -> Path:
        directory = Path(directory)
        self.processor.save_pretrained(directory)
        return directory

    def save(self, directory: Path) -> Path:
        directory = self.save_processing(directory)
        self.network.model.save_pretrained(directory)
        return directory


def load_hf(spec: ModelSpec, model_class: type[PreTrainedModel], config: PretrainedConfig,
            build_processor: Callable[[], Any], load_processor: Callable[..., Any]) -> tuple[PreTrainedModel, Any]:
    """(model, processor) for spec.weights; `config` and `build_processor` only serve random weights."""
    weights = spec.weights
    if weights.kind == "pretrained":
        try:
            return model_class.from_pretrained(spec.hub_id), load_processor(spec.hub_id)
        except Exception as error:  # any failure here means the hub copy is out of reach
            raise ServingbenchError(
                f"could not download {spec.hub_id} from the Hugging Face Hub ({first_line(error)}); "
                f"download it where the Hub is reachable and pass its local directory as the weights") from error
    if weights.kind == "path":
        source = weights_directory(spec)
    else:
        source = _random_model_dir(spec, model_class, config, build_processor)
    with loading(spec, source):
        return (model_class.from_pretrained(source, local_files_only=True),
                load_processor(source, local_files_only=True))


def saved_processor(spec: ModelSpec, directory: Path, load: Callable[..., Any]) -> Any:
    """A processor (or tokenizer) from a directory of save_processing()'s files, offline."""
    with loading(spec, directory):
        return load(directory, local_files_only=True)


@contextmanager
def loading(spec: ModelSpec, source: Path | str) -> Iterator[None]:
    """Missing or unreadable model files become one clear user error."""
    try:
        yield
    except (OSError, ValueError) as error:
        raise ServingbenchError(f"cannot load {spec.name} from {source}: {first_line(error)}") from error


def weights_directory(spec: ModelSpec) -> Path:
    """The local directory of a `path` weights source, which must exist."""
    directory = Path(spec.weights.path)
    if not directory.is_dir():
        raise ServingbenchError(f"weights directory {directory} does not exist")
    return directory


def _random_model_dir(spec: ModelSpec, model_class: type[PreTrainedModel], config: PretrainedConfig,
                      build_processor: Callable[[], Any]) -> Path:
    seed = spec.weights.seed
    # Keyed by content, not by spec name: wav2vec2 and wav2vec2-truncated share one copy.
    digest = hashlib.sha256(f"{CACHE_VERSION}|{config.to_json_string()}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"{model_class.__name__}-{spec.size}-seed{seed}-{digest}"
    if not target.is_dir():  # atomic_directory: if it exists, it is complete
        with atomic_directory(target) as scratch:
            torch.manual_seed(seed)
            model_class(config).save_pretrained(scratch)
            build_processor().save_pretrained(scratch)
    return target


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
