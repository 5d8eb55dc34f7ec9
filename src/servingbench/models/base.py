"""What every model of the zoo provides: samples on the wire, a loaded model, reference outputs.

A model is described once here and packaged by each framework adapter. Wire formats are the
study's: raw image bytes (JPEG/PNG), raw WAV audio, UTF-8 text.
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from .entry import ModelEntry

Size = Literal["tiny", "real"]

# Output is a JSON-able dict; its keys depend on the task:
#   image-classification: {"top5": [[class_id, label, score], ...], "logits": [float, ...]}
#   speech-recognition:   {"text": str, "token_ids": [int, ...]}
#   summarization:        {"text": str, "token_ids": [int, ...]}
Output = dict[str, Any]


@dataclass(frozen=True)
class Sample:
    """One request input in its wire form, ready to send."""

    name: str
    data: bytes
    content_type: str  # "image/jpeg", "audio/wav", "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Verdict:
    """Whether a served output matches the in-process reference, and why not."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Score:
    """A task metric of served answers over a sample set, and whether it passes (see scores.py)."""

    metric: str
    value: float
    threshold: float
    higher_is_better: bool

    @property
    def ok(self) -> bool:
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold


@dataclass(frozen=True)
class WeightsSource:
    """Where weights come from: "random" (seeded), "pretrained" (hub id) or a local directory."""

    kind: Literal["random", "pretrained", "path"]
    path: Path | None = None
    seed: int = 0

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> "WeightsSource":
        if text in ("random", "pretrained"):
            return cls(kind=text, seed=seed)  # type: ignore[arg-type]
        # absolute: the path is handed to servers that run in their own working directories
        return cls(kind="path", path=Path(text).expanduser().resolve(), seed=seed)

    def __str__(self) -> str:
        return str(self.path) if self.kind == "path" else self.kind


class LoadedModel(ABC):
    """A model ready to run in this process, in three steps a framework can take apart:

    preprocess (wire bytes -> input tensor, batch of one) -> network (tensor -> tensor) ->
    postprocess (output tensor of one input -> task output). A framework serving an exported network
    (TorchScript, ONNX, ...) runs the same pre- and postprocessing around its own network, through
    `ModelSpec.load_processing(dir).with_network(exported)`.
    """

    network: Any  # callable: preprocess()'s output -> postprocess()'s input; None before with_network()
    untraceable_because: ClassVar[str] = ""  # why traceable() is None, for the export error
    stacks_inputs: ClassVar[bool] = True  # inputs of equal shape may run through the network as one batch
    device: str = "cpu"  # where run_network() runs the network (on_device / placed)
    dtype: str = "float32"  # and in what precision: float32 at its boundary whatever runs inside

    @abstractmethod
    def preprocess(self, data: bytes) -> Any:
        """Wire bytes to the network's input tensor (a batch of one)."""

    @abstractmethod
    def postprocess(self, output: Any) -> Output:
        """The network's output for one input (batch of one) to the task output."""

    def predict(self, data: bytes) -> Output:
        """Wire bytes in, task output out."""
        import torch

        from servingbench.devices import to_host

        with torch.inference_mode():
            return self.postprocess(to_host(self.run_network(self.preprocess(data))))

    def run_network(self, tensor: Any) -> Any:
        """The network on preprocess()'s output (or a batch of them), moved to the model's device and dtype;
        half-precision outputs come back as float32, still on the device."""
        if (self.device, self.dtype) == ("cpu", "float32"):
            return self.network(tensor)
        from servingbench.devices import to_device, to_float32

        return to_float32(self.network(to_device(tensor, self.device, self.dtype)))

    def on_device(self, device: str, dtype: str = "float32") -> "LoadedModel":
        """This model with its network moved to `device` in `dtype` (the module itself moves: it is shared)."""
        if (device, dtype) == ("cpu", "float32"):
            return self
        from servingbench.devices import torch_dtype

        self.network.to(device=device, dtype=torch_dtype(dtype))
        return self.placed(device, dtype)

    def placed(self, device: str, dtype: str = "float32") -> "LoadedModel":
        """The same model, its inputs sent to `device` in `dtype` (a network already there: a loaded export)."""
        clone = copy.copy(self)
        clone.device, clone.dtype = device, dtype
        return clone

    def traceable(self) -> Any:
        """The network as a torch.nn.Module that torch.jit.trace / torch.onnx.export accept with
        preprocess()'s output as the example input; None when it can't be (say why in untraceable_because)."""
        return self.network

    def with_network(self, network: Any) -> "LoadedModel":
        """The same processing around another network (e.g. a TorchScript module loaded by a server)."""
        clone = copy.copy(self)
        clone.network = network
        return clone

    @abstractmethod
    def save(self, directory: Path) -> Path:
        """Write weights + processing files with save_pretrained (loadable offline); returns directory."""

    @abstractmethod
    def save_processing(self, directory: Path) -> Path:
        """Write only what pre- and postprocessing need (processor, tokenizer, labels), no weights."""


@dataclass
class ModelSpec(ABC):
    """A model at one size with one weights source: a model of the zoo, a plugin's or your own.

    To add a model, subclass this (or a task's spec in tasks.py, which brings samples, compare and
    score) and register it: an entry point in the `servingbench.models` group, or `python:` in a study.
    """

    name: ClassVar[str]
    task: ClassVar[str]
    hub_id: ClassVar[str | None]  # what --weights pretrained downloads
    size: Size = "tiny"
    weights: WeightsSource = field(default_factory=lambda: WeightsSource("random"))
    entry: ModelEntry | None = None  # how the study named it; None: this class's registered name
    dtype: str = "float32"  # the precision it is served in (server.dtype): compare()'s tolerance follows it

    def __post_init__(self) -> None:
        if self.entry is None:
            self.entry = ModelEntry(name=self.name)
        elif self.entry.kind != "registered":
            self.name = self.entry.name  # type: ignore[misc]  # the study's name for its own model

    def reference(self) -> ModelEntry:
        """What rebuilds this model in another process (a server): get_model(reference, size, weights)."""
        return self.entry  # type: ignore[return-value]

    @abstractmethod
    def load(self) -> LoadedModel:
        """Build (random, seeded) or load (pretrained / path) the model; eval mode, no grad."""

    @abstractmethod
    def load_processing(self, directory: Path) -> LoadedModel:
        """Pre- and postprocessing from save_processing()'s files, with no network (pair with with_network)."""

    def samples(self) -> list[Sample]:
        """The inputs requests carry: the study's `samples:` files where given, else the model's own."""
        if self.entry is not None and self.entry.samples is not None:
            from .samples import user_samples

            return user_samples(self.entry.samples, self.task)
        return self.default_samples()

    @abstractmethod
    def default_samples(self) -> list[Sample]:
        """Real inputs in wire form (deterministic, built offline)."""

    @abstractmethod
    def compare(self, expected: Output, actual: Output) -> Verdict:
        """Does a served output match the in-process reference output?"""

    @staticmethod
    @abstractmethod
    def score(references: list[Output], served: list[Output | None]) -> Score:
        """The task's accuracy metric of served answers over a sample set (see scores.py)."""
