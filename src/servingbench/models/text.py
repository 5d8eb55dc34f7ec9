"""Summarisation at run time: UTF-8 text in, a fixed-length greedy summary out."""
from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .base import Output
from .hf import HFModel


class Summarizer(HFModel):
    """input_ids -> `Generate` (a fixed-length greedy summary) -> sequences -> text + new token ids."""

    def __init__(self, network: Generate | None, tokenizer: PreTrainedTokenizerBase, max_input_tokens: int):
        super().__init__(network, tokenizer)
        self.max_input_tokens = max_input_tokens

    def preprocess(self, data: bytes) -> torch.Tensor:
        return self.processor(data.decode("utf-8"), truncation=True, max_length=self.max_input_tokens,
                              return_tensors="pt")["input_ids"]

    def postprocess(self, output: torch.Tensor) -> Output:
        new_ids = output[0, 1:].tolist()  # sequences start with the decoder start token
        return {"text": self.processor.decode(new_ids, skip_special_tokens=True), "token_ids": new_ids}

    def traceable(self) -> None:
        return None  # generate() is a Python loop over the decoder: neither torch.jit.trace nor ONNX export take it


class Generate(torch.nn.Module):
    """A seq2seq model decoding exactly `new_tokens` tokens greedily, so every request does the same work."""

    def __init__(self, model: PreTrainedModel, new_tokens: int):
        super().__init__()
        self.model = model
        self.eval()
        # Set in the model's generation config so that save() hands the same decoding to every server.
        # Replaces the hub config's length limits and beam settings.
        model.generation_config.update(num_beams=1, do_sample=False, early_stopping=False, length_penalty=1.0,
                                       min_new_tokens=new_tokens, max_new_tokens=new_tokens,
                                       min_length=None, max_length=None)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # One unpadded input: attend to every token, as the tokenizer's own mask would.
        return self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
