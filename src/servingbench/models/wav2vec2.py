"""Wav2Vec2-base-960h (speech recognition), on whole recordings or cut/padded to the study's 50,000 samples."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .base import LoadedModel
from .tasks import SpeechRecognitionSpec

if TYPE_CHECKING:
    from pathlib import Path

    from transformers import PretrainedConfig

CONFIGS = {
    "real": {},  # Wav2Vec2Config's defaults are wav2vec2-base: 94.4M parameters, 32-token CTC head
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "conv_dim": (32,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2},
}


class Wav2Vec2(SpeechRecognitionSpec):
    name = "wav2vec2"
    hub_id = "facebook/wav2vec2-base-960h"
    default_weights: ClassVar[str] = "random"
    input_samples: ClassVar[int | None] = None  # whole recording

    def config(self) -> PretrainedConfig:
        # Heavy imports on use, so that importing the registry stays fast.
        from transformers import Wav2Vec2Config

        return Wav2Vec2Config(**CONFIGS[self.size])

    def load(self) -> LoadedModel:
        from transformers import AutoProcessor, Wav2Vec2ForCTC

        from .hf import Logits, load_hf
        from .speech import SpeechRecognizer, wav2vec2_processor

        model, processor = load_hf(self, Wav2Vec2ForCTC, self.config(), wav2vec2_processor,
                                   AutoProcessor.from_pretrained)
        return SpeechRecognizer(Logits(model), processor, self.input_samples)

    def load_processing(self, directory: Path) -> LoadedModel:
        from transformers import AutoProcessor

        from .hf import saved_processor
        from .speech import SpeechRecognizer

        return SpeechRecognizer(None, saved_processor(self, directory, AutoProcessor.from_pretrained),
                                self.input_samples)


class Wav2Vec2Truncated(Wav2Vec2):
    """The study's fixed-shape variant (Listing 2): every input zero-padded or cut to 50,000 samples."""

    name = "wav2vec2-truncated"
    input_samples: ClassVar[int | None] = 50_000
