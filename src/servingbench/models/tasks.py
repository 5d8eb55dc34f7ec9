"""What the models of one task share: the task name, the samples and how outputs are compared."""
from __future__ import annotations

from typing import ClassVar

from .base import ModelSpec, Output, Sample, Verdict
from .compare import compare_classification, compare_tokens
from .samples import image_samples, speech_samples, text_samples
from .scores import rouge_l, top1_agreement, word_error_rate


class ImageClassificationSpec(ModelSpec):
    task = "image-classification"
    logits_tolerance: ClassVar[float] = 1e-3  # relative; other runtimes (ONNX, ...) differ by ~1e-5

    def samples(self) -> list[Sample]:
        return image_samples()

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return compare_classification(expected, actual, self.logits_tolerance)

    score = staticmethod(top1_agreement)


class SpeechRecognitionSpec(ModelSpec):
    task = "speech-recognition"

    def samples(self) -> list[Sample]:
        return speech_samples()

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return compare_tokens(expected, actual)

    score = staticmethod(word_error_rate)


class SummarizationSpec(ModelSpec):
    task = "summarization"

    def samples(self) -> list[Sample]:
        return text_samples()

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return compare_tokens(expected, actual)

    score = staticmethod(rouge_l)
