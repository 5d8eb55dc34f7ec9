"""Summarisation at run time: UTF-8 text in, a fixed-length greedy summary out."""
from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .base import Output
from .hf import HFModel


class Summarizer(HFModel):
    """A seq2seq model decoding exactly `new_tokens` tokens greedily, so every request does the same work."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, new_tokens: int,
                 max_input_tokens: int):
        super().__init__(model, tokenizer)
        self.max_input_tokens = max_input_tokens
        # Greedy and exactly `new_tokens` long, set in the model's generation config so that save() hands
        # the same decoding to every server. Replaces the hub config's length limits and beam settings.
        model.generation_config.update(num_beams=1, do_sample=False, early_stopping=False, length_penalty=1.0,
                                       min_new_tokens=new_tokens, max_new_tokens=new_tokens,
                                       min_length=None, max_length=None)

    @torch.inference_mode()
    def predict(self, data: bytes) -> Output:
        inputs = self.processor(data.decode("utf-8"), truncation=True, max_length=self.max_input_tokens,
                                return_tensors="pt")
        sequences = self.model.generate(**inputs)
        new_ids = sequences[0, 1:].tolist()  # sequences start with the decoder start token
        return {"text": self.processor.decode(new_ids, skip_special_tokens=True), "token_ids": new_ids}
