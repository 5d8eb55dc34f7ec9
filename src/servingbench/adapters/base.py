"""The adapter interface: what a framework module describes. It never manages processes or load.

An adapter says how to package a model for its framework, how to launch the server (argv, env,
readiness URL), how to encode a sample into an HTTP request and how to decode the answer.
The launcher, load engines, statistics and reports are shared and never branch on a framework.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from servingbench.config import Study
from servingbench.errors import ServingbenchError
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample


@dataclass(frozen=True)
class Availability:
    """Can this framework run on this host? If not: why, and how to fix it."""

    ok: bool
    reason: str = ""
    details: dict[str, str] = field(default_factory=dict)  # versions, binary paths, backends


@dataclass(frozen=True)
class Artifact:
    """A model packaged for one framework inside the run folder."""

    framework: str
    model: str
    path: Path
    files: tuple[Path, ...] = ()
    runtime: str = ""  # what runs the network inside the server (eager, torchscript, onnxruntime, a backend)


class ClientSideProcessing:
    """For frameworks that serve only the network (Triton, TF Serving, as in the study): the client runs
    the model's preprocessing before timing starts (measured apart) and its postprocessing on answers."""

    def __init__(self):
        self._models: dict[str, LoadedModel] = {}

    def keep(self, model_name: str, loaded: LoadedModel) -> None:
        self._models[model_name] = loaded

    def preprocess(self, model_name: str, sample: Sample) -> tuple[np.ndarray, float]:
        """The network's input for the sample, and the milliseconds it took."""
        start = time.perf_counter()
        tensor = self._models[model_name].preprocess(sample.data).numpy()
        return tensor, (time.perf_counter() - start) * 1000

    def postprocess(self, model_name: str, array: np.ndarray) -> Output:
        import torch  # the models extra; `servingbench load` never gets here

        return self._models[model_name].postprocess(torch.from_numpy(np.array(array)))


class Adapter(ABC):
    """One framework. Subclasses set `name` and `description` and register in adapters/__init__.py."""

    name: ClassVar[str]
    description: ClassVar[str]
    option_defaults: ClassVar[dict[str, Any]] = {}  # the framework's `server.options.<name>` and defaults
    option_choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # options that take one of a few values

    def __init__(self, study: Study):
        self.study = study
        options = study.server.options.get(self.name, {})
        unknown = set(options) - set(self.option_defaults)
        if unknown:
            raise ServingbenchError(f"server.options.{self.name}: unknown {', '.join(sorted(unknown))}; "
                                    f"known: {', '.join(self.option_defaults) or 'none'}")
        self.settings: dict[str, Any] = {**self.option_defaults, **options}
        for key, choices in self.option_choices.items():
            if self.settings[key] not in choices:
                raise ServingbenchError(f"server.options.{self.name}.{key} must be one of {', '.join(choices)}")

    @abstractmethod
    def availability(self) -> Availability:
        """Installed here? Checked before any packaging so a missing piece fails early and clearly."""

    def unsupported_reason(self, model: ModelSpec) -> str | None:
        """None when this framework can serve the model, else why not (the cell becomes 'unsupported')."""
        return None

    @abstractmethod
    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        """Write what the framework serves (archive, repository, export) under workdir."""

    @abstractmethod
    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        """The server's command line, environment and readiness check."""

    @abstractmethod
    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        """Encode one sample as the framework's request."""

    @abstractmethod
    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        """The task output from a response; None when this framework's answer can't be compared."""

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        """Cumulative server-side counters, read before and after each trial.

        Name them `requests_total` and `<stage>_us_total`: `server_us_total` (arrival to answer, inside
        the server), split into `queue_us_total` (waiting for a worker) and `inference_us_total` (the
        rest: pre/postprocessing and the network). The per-trial mean `<stage>_ms_mean` is then derived
        the same way for every framework.
        """
        return {}
