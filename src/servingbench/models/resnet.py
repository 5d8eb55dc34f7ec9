"""ResNet50 (the study's image model), as transformers builds it: same layout as torchvision's."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .base import LoadedModel
from .tasks import ImageClassificationSpec

if TYPE_CHECKING:
    from pathlib import Path

    from transformers import PretrainedConfig

CONFIGS = {
    "real": {},  # ResNetConfig's defaults are ResNet50: 25.6M parameters
    "tiny": {"embedding_size": 16, "hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1]},
}


class ResNet50(ImageClassificationSpec):
    name = "resnet50"
    hub_id = "microsoft/resnet-50"
    default_weights: ClassVar[str] = "random"

    def config(self) -> PretrainedConfig:
        # Heavy imports on use, so that importing the registry stays fast.
        from transformers import ResNetConfig

        from .vision import imagenet_labels

        return ResNetConfig(id2label=dict(enumerate(imagenet_labels())), **CONFIGS[self.size])

    def load(self) -> LoadedModel:
        from transformers import ResNetForImageClassification

        from .classification import config_labels
        from .hf import Logits, load_hf
        from .vision import HFImageClassifier, imagenet_processor, load_image_processor

        model, processor = load_hf(self, ResNetForImageClassification, self.config(), imagenet_processor,
                                   load_image_processor)
        return HFImageClassifier(Logits(model), processor, config_labels(model.config))

    def load_processing(self, directory: Path) -> LoadedModel:
        from .vision import HFImageClassifier, image_processing

        return HFImageClassifier(None, *image_processing(self, directory))
