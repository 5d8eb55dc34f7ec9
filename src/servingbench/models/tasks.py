"""What the models of one task share: the task name, the samples and how outputs are compared."""
from __future__ import annotations

from typing import ClassVar

from .base import ModelSpec, Output, Sample, Verdict
from .compare import compare_classification, compare_tokens, compare_values
from .samples import image_samples, sentence_samples, speech_samples, text_samples
from .scores import rouge_l, top1_agreement, values_agreement, word_error_rate

# Below float32 the served network and the in-process one round differently (float16 keeps ~3 decimal digits,
# bfloat16 ~2): values are held to a tolerance that many times float32's, and greedy tokens may part at near-ties.
TOLERANCE_SCALE = {"float32": 1.0, "float16": 10.0, "bfloat16": 50.0}
TOKENS_MAY_DIFFER = {"float32": 0.0, "float16": 0.1, "bfloat16": 0.1}  # fraction of positions


class ImageClassificationSpec(ModelSpec):
    task = "image-classification"
    logits_tolerance: ClassVar[float] = 1e-3  # relative; other runtimes (ONNX, ...) differ by ~1e-5

    def default_samples(self) -> list[Sample]:
        return image_samples()

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return compare_classification(expected, actual, self.logits_tolerance * TOLERANCE_SCALE[self.dtype])

    score = staticmethod(top1_agreement)


class SpeechRecognitionSpec(ModelSpec):
    task = "speech-recognition"

    def default_samples(self) -> list[Sample]:
        return speech_samples()

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return compare_tokens(expected, actual, TOKENS_MAY_DIFFER[self.dtype])

    score = staticmethod(word_error_rate)


class SummarizationSpec(ModelSpec):
    task = "summarization"

    def default_samples(self) -> list[Sample]:
        return text_samples()

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return compare_tokens(expected, actual, TOKENS_MAY_DIFFER[self.dtype])

    score = staticmethod(rouge_l)


class TextClassificationSpec(ModelSpec):
    task = "text-classification"
    logits_tolerance: ClassVar[float] = 1e-3

    def default_samples(self) -> list[Sample]:
        return sentence_samples()

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return compare_classification(expected, actual, self.logits_tolerance * TOLERANCE_SCALE[self.dtype])

    score = staticmethod(top1_agreement)


VALUES_TOLERANCE = 1e-3  # relative to the values' scale: other runtimes differ by ~1e-5


class FeatureExtractionSpec(ModelSpec):
    task = "feature-extraction"

    def default_samples(self) -> list[Sample]:
        return sentence_samples()

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return compare_values(expected, actual, "embedding", VALUES_TOLERANCE * TOLERANCE_SCALE[self.dtype])

    score = staticmethod(values_agreement("embedding", VALUES_TOLERANCE))


class BareNetworkSpec(ModelSpec):
    """A network without processing: a tensor in (a .npy body), its first output tensor out."""

    task = "bare-network"

    def default_samples(self) -> list[Sample]:
        from ..errors import ServingbenchError

        raise ServingbenchError(f"{self.name}: a bare network has no built-in inputs; give samples (.npz or .npy)")

    def compare(self, expected: Output, actual: Output) -> Verdict:
        return compare_values(expected, actual, "output", VALUES_TOLERANCE * TOLERANCE_SCALE[self.dtype])

    score = staticmethod(values_agreement("output", VALUES_TOLERANCE))
