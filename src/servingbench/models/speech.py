"""Speech recognition at run time: WAV bytes in, CTC greedy transcript out."""
from __future__ import annotations

from itertools import groupby

import torch
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Processor

from .audio import decode_wav, fit_length
from .base import Output
from .hf import HFModel
from .tokenizers import ctc_tokenizer

SAMPLE_RATE = 16_000


def wav2vec2_processor() -> Wav2Vec2Processor:
    """facebook/wav2vec2-base-960h's processor: zero-mean unit-variance audio, character CTC vocabulary."""
    features = Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True, return_attention_mask=False)
    return Wav2Vec2Processor(feature_extractor=features, tokenizer=ctc_tokenizer())


class SpeechRecognizer(HFModel):
    """input_values -> a *ForCTC network -> logits -> CTC greedy transcript.

    `input_samples` fixes the network's input length (None: the whole recording); the cut or padding is
    preprocessing, so an exported network sees exactly what the eager one does.
    """

    def __init__(self, network: torch.nn.Module | None, processor: Wav2Vec2Processor, input_samples: int | None = None):
        super().__init__(network, processor)
        self.input_samples = input_samples

    def preprocess(self, data: bytes) -> torch.Tensor:
        audio = decode_wav(data, SAMPLE_RATE)
        values = self.processor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_values
        if self.input_samples is not None:
            values = fit_length(values, self.input_samples)
        return torch.from_numpy(values)

    def postprocess(self, output: torch.Tensor) -> Output:
        frame_ids = output.argmax(dim=-1)[0].tolist()
        blank = self.processor.tokenizer.pad_token_id
        return {
            "text": self.processor.decode(frame_ids),  # CTC decoding: merge repeats, drop blanks
            "token_ids": [token for token, _ in groupby(frame_ids) if token != blank],
        }
