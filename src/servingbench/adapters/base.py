"""The adapter interface: what a framework module describes. It never manages processes or load.

An adapter says how to package a model for its framework, how to launch the server (argv, env,
readiness URL), how to encode a sample into an HTTP request and how to decode the answer.
The launcher, load engines, statistics and reports are shared and never branch on a framework.
"""
from __future__ import annotations

import shlex
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, get_args

import numpy as np

from servingbench.adapters.written_config import ServableConfig, written_files
from servingbench.atomic import write_atomically
from servingbench.config import ServerSettings, Study
from servingbench.devices import Placement, place
from servingbench.errors import ServingbenchError
from servingbench.launch.containers import Container, find_runtime, image_reference, runtime_problem
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.launch.image_definitions import ImageRecipe, image_tag, sif_path
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample
from servingbench.pipeline import Pipeline


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


@dataclass(frozen=True)
class Host:
    """What a configuration may use: CPU cores and GPUs (the tuner never asks for more)."""

    cores: int
    gpus: int = 0


@dataclass(frozen=True)
class Knob:
    """One setting `servingbench tune` may change: a dotted study key and the values worth trying here."""

    name: str  # short, for --knobs and labels: workers, threads, runtime, batch_size, batch_delay_ms, ...
    key: str  # e.g. "server.workers", "server.options.torchserve.batch_size"
    values: tuple[Any, ...]  # the first is the "off" value that `needs` refers to
    uses_cores: bool = False  # knobs that each multiply the cores used: their product must fit the host
    needs: str | None = None  # another knob's name: this one matters only when that one is not at its first value


def powers_of_two_up_to(limit: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to `limit`, and `limit` itself."""
    values = [1]
    while values[-1] * 2 <= limit:
        values.append(values[-1] * 2)
    return tuple(dict.fromkeys([*values, max(1, limit)]))


def core_knobs(host: Host, workers: bool = True) -> list[Knob]:
    """`server.workers` (model copies serving in parallel) and `server.threads` (intra-op threads each), sized so
    that workers x threads never exceeds the host's cores."""
    spread = powers_of_two_up_to(host.cores)
    threads = Knob("threads", "server.threads", spread, uses_cores=True)
    return [Knob("workers", "server.workers", spread, uses_cores=True), threads] if workers else [threads]


def runtime_knob() -> Knob:
    """`server.runtime`: what runs the network of servingbench's served-model folder (the Python frameworks,
    TorchServe, Triton's python backend); the study's default first."""
    field_ = ServerSettings.model_fields["runtime"]
    return Knob("runtime", "server.runtime", (field_.default, *(r for r in get_args(field_.annotation)
                                                                  if r != field_.default)))


# Batching as tune tries it, in every framework: a few batch sizes besides the framework's "off" value, and a
# few waits for a batch to fill (short: a closed loop of a few users never fills a batch that waits long).
BATCH_SIZES = (4, 8)
BATCH_DELAYS_MS = (5, 20)
DELAY_UNITS = {"ms": 1, "us": 1000, "s": 0.001}  # per millisecond
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
    # Containers (`server.container`). `container_image`: the framework's official image. A server that runs
    # servingbench's own code (a handler, the served-model folder) can't run from it, which lacks servingbench: it
    # runs from the image `servingbench images` defines (launch/image_definitions.py), with `image_extras` (pip
    # extras of servingbench) and `image_system_packages` (Debian packages) in it.
    container_image: ClassVar[str | None] = None
    container_image_gpu: ClassVar[str | None] = None  # the official image's GPU build, where it is another image
    runs_servingbench_code: ClassVar[bool] = True
    image_extras: ClassVar[tuple[str, ...]] = ()
    image_system_packages: ClassVar[tuple[str, ...]] = ()
    # The pipelines this framework can serve (config.Pipeline). A server that takes the raw sample and answers the
    # task output is end_to_end; one that can also take the network's tensor adds network_only.
    pipelines: ClassVar[tuple[Pipeline, ...]] = ("end_to_end",)
    # A network_only framework's client work (preprocessing before requests, postprocessing after): its adapter
    # keeps each model's processing there when packaging; the load loop's client step rebuilds it (client_step.py).
    client_processing: ClientSideProcessing | None = None

    def __init__(self, study: Study, pipeline: Pipeline | None = None):
        """`pipeline`: the one this adapter serves; the study's first by default."""
        self.study = study
        self.pipeline: Pipeline = pipeline or study.pipeline[0]
        options = study.server.options.get(self.name, {})
        unknown = set(options) - set(self.option_defaults)
        if unknown:
            raise ServingbenchError(f"server.options.{self.name}: unknown {', '.join(sorted(unknown))}; "
                                    f"known: {', '.join(self.option_defaults) or 'none'}")
        self.settings: dict[str, Any] = {**self.option_defaults, **options}
        for key, choices in self.option_choices.items():
            if self.settings[key] not in choices:
                raise ServingbenchError(f"server.options.{self.name}.{key} must be one of {', '.join(choices)}")
        # `cuda` asked for on a host without one fails here, as a missing container runtime or image
        self.placement: Placement = place(study.server.device, study.server.dtype)
        self.container = self._container()

    def _container(self) -> Container | None:
        """The runtime and image `server.container` runs this framework's server in; None: on this host."""
        settings = self.study.server.container
        if settings is None:
            return None
        problem = runtime_problem(settings.runtime)
        if problem:
            raise ServingbenchError(f"server.container: {problem}")
        runtime = find_runtime(settings.runtime)
        assert runtime is not None
        image = settings.images.get(self.name)
        if image is None and self.runs_servingbench_code:
            image = str(sif_path(self.name, settings.image_dir)) if runtime == "apptainer" else image_tag(self.name)
        image = image or (self.placement.gpu and self.container_image_gpu) or self.container_image
        if image is None:  # nothing to start (an external server)
            return None
        reference = image_reference(runtime, image)
        if reference.endswith(".sif") and not Path(reference).is_file():
            raise ServingbenchError(f"server.container: no image {reference} for {self.name}: servingbench images "
                                    f"{self.name} --out {settings.image_dir}, then apptainer build {reference} "
                                    f"{settings.image_dir / f'{self.name}.def'} (or set server.container.images."
                                    f"{self.name})")
        return Container(runtime, reference, settings.gpus or self.placement.gpu is not None)

    @classmethod
    def image_recipe(cls) -> ImageRecipe:
        """What this framework's image holds; the pins of its layered environment, if it has one, last."""
        return ImageRecipe(cls.name, cls.image_extras, tuple(getattr(cls, "venv_requirements", ())),
                           cls.image_system_packages, cls.container_image)

    @abstractmethod
    def availability(self) -> Availability:
        """Installed here? Checked before any packaging so a missing piece fails early and clearly."""

    def knobs(self, host: Host) -> list[Knob]:
        """The settings `servingbench tune` searches for this framework, sized to `host`; none unless declared."""
        return []

    def option_knob(self, name: str, option: str, values: tuple[Any, ...], **kwargs: Any) -> Knob:
        """A knob over one of this framework's `server.options` entries."""
        assert option in self.option_defaults, option
        return Knob(name, f"server.options.{self.name}.{option}", values, **kwargs)

    def batching_knobs(self, size_option: str, off: int, delay_option: str, unit: str,
                       sizes: tuple[int, ...] = BATCH_SIZES) -> list[Knob]:
        """The batch size option (`off` first: no batching) and the wait for a batch to fill, which matters only
        with batching on, in the option's unit ("ms", "us" or "s"); none when no size is worth trying."""
        if not sizes:
            return []
        return [self.option_knob("batch_size", size_option, (off, *sizes)),
                self.batch_delay_knob(delay_option, unit, needs="batch_size")]

    def batch_delay_knob(self, option: str, unit: str, needs: str) -> Knob:
        delays = tuple(ms * DELAY_UNITS[unit] for ms in BATCH_DELAYS_MS)
        return self.option_knob(f"batch_delay_{unit}", option, delays, needs=needs)

    def write_config(self, artifact: Artifact, launch: LaunchSpec, run_dir: Path, target: Path) -> ServableConfig:
        """The deployment launched from (artifact, launch, run_dir), still up, written under the empty folder
        `target` in the framework's own format, with the command that serves it from there.

        By default `serve.sh`: the launch's command line and environment, run in the run folder. That is the
        whole configuration of frameworks that serve servingbench's generated app (the artifact and the files
        the launch wrote stay in the run folder); the server's scratch folders, removed after a run, are made
        again."""
        if launch.argv is None:
            raise ServingbenchError(f"{self.name}: nothing was launched, so there is no configuration to write")
        lines = ["#!/bin/sh", f"# {self.name} serving {artifact.model}, as servingbench launched it",
                 f"cd {shlex.quote(str(launch.cwd or run_dir))} || exit 1",
                 *(f"mkdir -p {shlex.quote(str(scratch))}" for scratch in launch.scratch_dirs),
                 *(f"export {name}={shlex.quote(value)}" for name, value in launch.env.items()),
                 f"exec {shlex.join(launch.argv)}"]
        script = target / "serve.sh"
        write_atomically(script, "\n".join(lines) + "\n", executable=True)
        return ServableConfig(written_files(target), "sh serve.sh")

    def unsupported_reason(self, model: ModelSpec) -> str | None:
        """None when this framework can serve the model, else why not (the cell becomes 'unsupported')."""
        return None

    def pipeline_problem(self) -> str | None:
        """Why this framework can't serve `self.pipeline`, or None."""
        if self.pipeline in self.pipelines:
            return None
        return (f"{self.name} serves only {' and '.join(self.pipelines)}" + (
            ": it takes the raw sample and answers the task output, it can't be handed the network's tensor"
            if self.pipelines == ("end_to_end",) else ""))

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
