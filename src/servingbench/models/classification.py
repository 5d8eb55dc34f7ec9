"""What every classifier answers (image or text): top classes with their probabilities, and the logits.

The labels travel with the processing files as labels.json, so a server rebuilds the same answer.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from .base import Output

LABELS_JSON = "labels.json"
TOP_K = 5


def classification_output(logits: torch.Tensor, labels: Sequence[str]) -> Output:
    """{"top5": [[class_id, label, probability], ...] (at most 5), "logits": [...]} for one input's logits."""
    logits = logits.float()
    top = torch.softmax(logits, dim=-1).topk(min(TOP_K, logits.shape[-1]))
    return {"top5": [[i, labels[i], p] for i, p in zip(top.indices.tolist(), top.values.tolist())],
            "logits": logits.tolist()}


def save_labels(directory: Path, labels: Sequence[str]) -> None:
    (Path(directory) / LABELS_JSON).write_text(json.dumps(list(labels)) + "\n", encoding="utf-8")


def read_labels(directory: Path) -> tuple[str, ...]:
    return tuple(json.loads((Path(directory) / LABELS_JSON).read_text(encoding="utf-8")))


def config_labels(config) -> tuple[str, ...]:
    """A transformers config's class names, index = class id."""
    return tuple(config.id2label[i] for i in range(config.num_labels))
