"""BART-large-CNN (summarisation), decoding a fixed number of tokens so every request costs the same."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .base import LoadedModel
from .tasks import SummarizationSpec

if TYPE_CHECKING:
    from pathlib import Path

    from transformers import PretrainedConfig

SHARED = {"vocab_size": 50264, "max_position_embeddings": 1024, "activation_function": "gelu"}
CONFIGS = {
    "real": {**SHARED, "d_model": 1024, "encoder_layers": 12, "decoder_layers": 12, "encoder_attention_heads": 16,
             "decoder_attention_heads": 16, "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096},  # 406M parameters
    # init_std 1.0: at the default 0.02 this narrow model decodes every input to the same repeated token.
    "tiny": {**SHARED, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
             "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "init_std": 1.0},
}


class BartLargeCnn(SummarizationSpec):
    name = "bart-large-cnn"
    hub_id = "facebook/bart-large-cnn"
    default_weights: ClassVar[str] = "random"
    new_tokens: ClassVar[dict[str, int]] = {"real": 32, "tiny": 8}  # min = max new tokens, per size
    max_input_tokens: ClassVar[int] = 512

    def config(self) -> PretrainedConfig:
        # Heavy imports on use, so that importing the registry stays fast.
        from transformers import BartConfig

        return BartConfig(**CONFIGS[self.size])

    def load(self) -> LoadedModel:
        from transformers import AutoTokenizer, BartForConditionalGeneration

        from .hf import load_hf
        from .text import Generate, Summarizer
        from .tokenizers import bart_tokenizer

        model, tokenizer = load_hf(self, BartForConditionalGeneration, self.config(), bart_tokenizer,
                                   AutoTokenizer.from_pretrained)
        return Summarizer(Generate(model, self.new_tokens[self.size]), tokenizer, self.max_input_tokens)

    def load_processing(self, directory: Path) -> LoadedModel:
        from transformers import AutoTokenizer

        from .hf import saved_processor
        from .text import Summarizer

        return Summarizer(None, saved_processor(self, directory, AutoTokenizer.from_pretrained), self.max_input_tokens)
