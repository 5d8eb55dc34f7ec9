"""Your own transformers model: a hub id or a local directory plus a task, served like the zoo's.

The task picks the Auto class, the processor and the same preprocess -> network -> postprocess split
the zoo's models of that task use, so every framework serves it and every answer is checked.
Weights: `default`/`pretrained` load the model as given (the directory, or the hub where it is
reachable); `random` keeps its config and processor but draws seeded random weights; a directory
(what save() wrote, e.g. inside a server's folder) loads from there.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .base import LoadedModel, ModelSpec, Output, Sample, Score, Verdict, WeightsSource
from .tasks import (
    FeatureExtractionSpec,
    ImageClassificationSpec,
    SpeechRecognitionSpec,
    SummarizationSpec,
    TextClassificationSpec,
)

# The zoo's task specs bring each task's default samples, output comparison and score.
TASK_SPECS: dict[str, type[ModelSpec]] = {
    "image-classification": ImageClassificationSpec,
    "speech-recognition": SpeechRecognitionSpec,  # the zoo's name for automatic-speech-recognition
    "summarization": SummarizationSpec,
    "text-classification": TextClassificationSpec,
    "feature-extraction": FeatureExtractionSpec,
}
MAX_INPUT_TOKENS = 512  # text inputs are cut here (or at the model's own limit, if lower)


@dataclass
class HFTaskModel(ModelSpec):
    task: ClassVar[str] = "hf"  # replaced per instance by the entry's task
    hub_id: ClassVar[str | None] = None
    default_weights: ClassVar[str] = "pretrained"
    logits_tolerance: ClassVar[float] = 1e-3
    new_tokens: ClassVar[int] = 32  # summarization: min = max new tokens, so every request does the same work

    def __post_init__(self) -> None:
        super().__post_init__()
        entry = self.entry
        self.task = "speech-recognition" if entry.task == "automatic-speech-recognition" else entry.task  # type: ignore
        self.hub_id = entry.hf  # type: ignore[misc]
        if self.weights.kind == "pretrained" and Path(entry.hf).is_dir():
            self.weights = WeightsSource("path", Path(entry.hf), self.weights.seed)

    @property
    def _task_spec(self) -> type[ModelSpec]:
        return TASK_SPECS[self.task]

    def default_samples(self) -> list[Sample]:
        return self._task_spec.default_samples(self)  # type: ignore[arg-type]

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return self._task_spec.compare(self, expected, actual)  # type: ignore[arg-type]

    def score(self, references: list[Output], served: list[Output | None]) -> Score:  # type: ignore[override]
        return self._task_spec.score(references, served)

    def load(self) -> LoadedModel:
        from .hf import load_hf

        auto_class, load_processor = _auto_classes(self.task)
        if self.weights.kind == "random":
            model, processor = self._random(auto_class, load_processor)
        else:
            model, processor = load_hf(self, auto_class, None, None, load_processor)  # type: ignore[arg-type]
        return _wrap(self, model, processor)

    def _random(self, auto_class: Any, load_processor: Any) -> tuple[Any, Any]:
        """The source's architecture and processor with seeded random weights (no weights file needed)."""
        import torch
        from transformers import AutoConfig

        from .hf import loading

        with loading(self, self.entry.hf):
            config = AutoConfig.from_pretrained(self.entry.hf)
            processor = load_processor(self.entry.hf)
        torch.manual_seed(self.weights.seed)
        return auto_class.from_config(config).eval(), processor

    def load_processing(self, directory: Path) -> LoadedModel:
        from .hf import loading, saved_processor

        if self.task == "image-classification":
            from .vision import HFImageClassifier, image_processing

            return HFImageClassifier(None, *image_processing(self, directory))
        processor = saved_processor(self, directory, _auto_classes(self.task)[1])
        if self.task == "text-classification":
            from .classification import read_labels
            from .text import TextClassifier

            with loading(self, directory):
                labels = read_labels(directory)
            return TextClassifier(None, processor, labels)
        return _processing(self, None, processor)


def _auto_classes(task: str) -> tuple[Any, Any]:
    """(the Auto model class, how to load the processor) for a task."""
    import transformers

    from .vision import load_image_processor

    tokenizer = transformers.AutoTokenizer.from_pretrained
    return {
        "image-classification": (transformers.AutoModelForImageClassification, load_image_processor),
        "speech-recognition": (transformers.AutoModelForCTC, transformers.AutoProcessor.from_pretrained),
        "summarization": (transformers.AutoModelForSeq2SeqLM, tokenizer),
        "text-classification": (transformers.AutoModelForSequenceClassification, tokenizer),
        "feature-extraction": (transformers.AutoModel, tokenizer),
    }[task]


def _wrap(spec: HFTaskModel, model: Any, processor: Any) -> LoadedModel:
    """The task's LoadedModel around a freshly loaded transformers model."""
    from .classification import config_labels
    from .hf import Logits

    if spec.task in ("summarization", "text-classification", "feature-extraction"):
        # Saved with the processing files, so a server cuts inputs where the study did.
        limit = getattr(model.config, "max_position_embeddings", None) or MAX_INPUT_TOKENS
        processor.model_max_length = min(processor.model_max_length, limit, MAX_INPUT_TOKENS)
    if spec.task == "image-classification":
        from .vision import HFImageClassifier

        return HFImageClassifier(Logits(model), processor, config_labels(model.config))
    if spec.task == "text-classification":
        from .text import TextClassifier

        return TextClassifier(Logits(model), processor, config_labels(model.config))
    if spec.task == "summarization":
        from .text import Generate

        return _processing(spec, Generate(model, spec.new_tokens), processor)
    output = "logits" if spec.task == "speech-recognition" else "last_hidden_state"  # feature extraction
    return _processing(spec, Logits(model, output), processor)


def _processing(spec: HFTaskModel, network: Any, processor: Any) -> LoadedModel:
    """Speech recognition, summarization and feature extraction: processing that needs only the processor."""
    from .speech import SpeechRecognizer
    from .text import SentenceEmbedder, Summarizer

    if spec.task == "speech-recognition":
        return SpeechRecognizer(network, processor)
    if spec.task == "summarization":
        return Summarizer(network, processor, processor.model_max_length)
    return SentenceEmbedder(network, processor)  # feature extraction
