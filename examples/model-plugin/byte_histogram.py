"""An example servingbench model plugin: a tiny text classifier over the histogram of a text's bytes.

It shows the whole model interface: a ModelSpec (here through the text-classification task spec,
which brings the samples, the answer check and the score) and a LoadedModel split into
preprocess -> network -> postprocess, with save() / load() so that every server rebuilds it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from servingbench.errors import ServingbenchError
from servingbench.models import LoadedModel
from servingbench.models.classification import classification_output
from servingbench.models.tasks import TextClassificationSpec

LABELS = ("prose", "code", "data")
WEIGHTS = "weights.pt"


class ByteHistogramClassifier(LoadedModel):
    def __init__(self, network: torch.nn.Module | None):
        self.network = network

    def preprocess(self, data: bytes) -> torch.Tensor:
        """Wire bytes -> the share of each byte value: a (1, 256) tensor."""
        counts = torch.bincount(torch.frombuffer(bytearray(data), dtype=torch.uint8).long(), minlength=256)
        return (counts.float() / max(len(data), 1))[None]

    def postprocess(self, output: torch.Tensor) -> dict:
        return classification_output(output[0], LABELS)

    def save_processing(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return directory  # the processing has no files: the labels are in the code

    def save(self, directory: Path) -> Path:
        directory = self.save_processing(directory)
        torch.save(self.network.state_dict(), directory / WEIGHTS)
        return directory


@dataclass
class ByteHistogram(TextClassificationSpec):
    name: ClassVar[str] = "byte-histogram"
    hub_id: ClassVar[str | None] = None
    default_weights: ClassVar[str] = "random"

    def load(self) -> LoadedModel:
        torch.manual_seed(self.weights.seed)
        network = torch.nn.Linear(256, len(LABELS))
        if self.weights.kind == "path":  # what save() wrote: how servers get the model
            network.load_state_dict(torch.load(Path(self.weights.path) / WEIGHTS, weights_only=True))
        elif self.weights.kind == "pretrained":
            raise ServingbenchError("byte-histogram has no pretrained weights: use random or a saved directory")
        return ByteHistogramClassifier(network.eval())

    def load_processing(self, directory: Path) -> LoadedModel:
        return ByteHistogramClassifier(None)
