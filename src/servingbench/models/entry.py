"""A model as a study names it: a registered name, or your own model described in the study file.

The same entry travels to every server (inside the served-model folder's manifest), so a server
process rebuilds exactly the model the study built, whoever defined it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The transformers pipeline names servingbench wraps; `speech-recognition` is the zoo's name for the second.
HFTask = Literal["image-classification", "automatic-speech-recognition", "speech-recognition", "summarization",
                 "text-classification", "feature-extraction"]
HF_TASKS = get_args(HFTask)
NETWORK_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".onnx")


class InputSpec(BaseModel):
    """What a bare network takes: one tensor; -1 marks an axis whose size varies between inputs."""

    model_config = ConfigDict(extra="forbid")

    dtype: str | None = Field(None, description="numpy dtype name, e.g. float32, int64")
    shape: list[int] | None = Field(None, description="with the batch axis, e.g. [1, 3, 224, 224]; -1 = varies")


class ModelEntry(BaseModel):
    """One entry of a study's `models:`. A bare name is a registered model (the zoo or a plugin's entry
    point); `hf`, `network` or `python` define your own; `samples` replaces any model's sample inputs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    hf: str | None = Field(None, description="a Hugging Face model id or a local model directory")
    task: HFTask | None = Field(None, description="with hf: what the model does")
    network: Path | None = Field(None, description="a TorchScript (.pt) or ONNX (.onnx) file, served as a bare network")
    input: InputSpec | None = Field(None, description="with network: the input it takes (checked on the samples)")
    python: str | None = Field(None, description="'package.module:Class' or 'path/to/file.py:Class', a ModelSpec")
    samples: Path | None = Field(None, description="a folder (one sample per file), a .txt file (one per line) or "
                                                   ".npz/.npy arrays (network inputs)")

    @model_validator(mode="after")
    def _one_definition(self) -> "ModelEntry":
        kinds = [k for k in ("hf", "network", "python") if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise ValueError(f"give one of hf, network, python, not {' and '.join(kinds)}")
        if (self.hf is None) != (self.task is None):
            raise ValueError("hf and task go together: a model id or directory and what it does "
                             f"({', '.join(HF_TASKS)})")
        if self.network is not None and self.samples is None:
            raise ValueError("a network needs samples: a .npz (one array per input) or .npy (first axis = inputs)")
        if self.network is not None and self.network.suffix not in NETWORK_SUFFIXES:
            raise ValueError(f"network must be TorchScript or ONNX ({', '.join(NETWORK_SUFFIXES)}): {self.network}")
        if self.input is not None and self.network is None:
            raise ValueError("input describes a bare network: give it with network")
        return self

    @property
    def kind(self) -> Literal["registered", "hf", "network", "python"]:
        return "hf" if self.hf else "network" if self.network else "python" if self.python else "registered"

    def resolved(self, base: Path) -> "ModelEntry":
        """Paths made absolute against `base` (the study file's folder or the working directory): servers run
        in their own folders. An `hf` value that is not an existing directory stays a hub id."""
        update: dict = {}
        for key in ("network", "samples"):
            path = getattr(self, key)
            if path is not None:
                update[key] = (base / Path(path).expanduser()).resolve()
        if self.hf is not None and (base / Path(self.hf).expanduser()).is_dir():
            update["hf"] = str((base / Path(self.hf).expanduser()).resolve())
        if self.python is not None:
            target, _, attribute = self.python.rpartition(":")
            if target.endswith(".py"):
                update["python"] = f"{(base / Path(target).expanduser()).resolve()}:{attribute}"
        return self.model_copy(update=update)
