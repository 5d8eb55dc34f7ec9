"""Text models at run time: UTF-8 text in; a fixed-length greedy summary, classes or an embedding out."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .base import Output
from .classification import classification_output, save_labels
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

    # generate() is a Python loop over the decoder: neither torch.jit.trace nor ONNX export take it.
    untraceable_because = ("its network is a Python generate() loop, not a graph (the study's finding for BART on "
                           "TensorFlow; keras-hub's own BART can export generate(), see the README)")

    def traceable(self) -> None:
        return None


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


class TextEncoder(HFModel):
    """Text in, input_ids (one unpadded input, cut to the tokenizer's model_max_length) to the network."""

    def preprocess(self, data: bytes) -> torch.Tensor:
        return self.processor(data.decode("utf-8"), truncation=True, max_length=self.processor.model_max_length,
                              return_tensors="pt")["input_ids"]


class TextClassifier(TextEncoder):
    """input_ids -> a *ForSequenceClassification network (`Logits`) -> top classes + logits."""

    def __init__(self, network: torch.nn.Module | None, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str]):
        super().__init__(network, tokenizer)
        self.labels = labels

    def postprocess(self, output: torch.Tensor) -> Output:
        return classification_output(output[0], self.labels)

    def save_processing(self, directory: Path) -> Path:
        directory = super().save_processing(directory)
        save_labels(directory, self.labels)
        return directory


class SentenceEmbedder(TextEncoder):
    """input_ids -> an encoder's last hidden states (`Logits(model, "last_hidden_state")`) -> their mean."""

    def postprocess(self, output: torch.Tensor) -> Output:
        return {"embedding": output[0].float().mean(dim=0).tolist()}

