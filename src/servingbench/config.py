"""Study configuration: pydantic models, built-in presets, YAML files and CLI overrides."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from servingbench.analysis.slo import parse_gates
from servingbench.devices import DEVICE_PATTERN, DEVICE_WORDS, Dtype
from servingbench.errors import ServingbenchError
from servingbench.load.contracts import LOADGEN_SCENARIOS, RequestOrderKind
from servingbench.models.entry import ModelEntry
from servingbench.pipeline import DEFAULT_PIPELINE, Pipeline

STUDY_USERS = [1, 10, 25, 50, 75, 100]  # the reference study's user counts (section 4.6)
CLOSED_LOOP = "closed"  # the study's closed-loop users, one cell per user count
CAPACITY = "capacity"  # the highest Server-scenario rate LoadGen calls VALID under the latency bound
SCENARIOS = (CLOSED_LOOP, *LOADGEN_SCENARIOS, CAPACITY)


class _Strict(BaseModel):
    # A misspelt field must be an error that names it, not a silently ignored key.
    model_config = ConfigDict(extra="forbid")


class LoadSettings(_Strict):
    """How load is driven: the study's closed loop (users per level, warm-up, fixed duration or until
    stable, repetitions) and/or MLPerf LoadGen scenarios."""

    scenarios: list[str] = Field(default_factory=lambda: [CLOSED_LOOP],
                                 description=f"any of {', '.join(SCENARIOS)}")
    users: list[int] = Field(default_factory=lambda: list(STUDY_USERS))
    repetitions: int = Field(5, ge=1)
    duration_s: float = Field(60.0, gt=0, description="measured seconds per trial (LoadGen: its min duration)")
    warmup_s: float = Field(10.0, ge=0)
    request_timeout_s: float = Field(120.0, gt=0)
    until_stable: bool = Field(False, description="closed loop: measure in windows until the last 3 agree")
    stability_window_s: float = Field(5.0, gt=0)
    stability_tolerance_pct: float = Field(10.0, gt=0, description="largest spread of throughput and p50 "
                                                                   "over the last 3 windows, % of their mean")
    max_duration_s: float = Field(300.0, gt=0, description="until_stable: give up (with a warning) after this")
    target_qps: list[float] = Field(default_factory=lambda: [10.0],
                                    description="server: Poisson arrival rates, one cell each (a number or a list); "
                                                "offline: the first is its expected rate")
    latency_bound_ms: float = Field(100.0, gt=0, description="server and capacity: the latency bound")
    latency_percentile: float = Field(99.0, gt=0, lt=100, description="the percentile held to the bound")
    min_query_count: int | None = Field(None, ge=1, description="LoadGen's minimum queries per trial; default: "
                                                                "enough for its early stopping to certify the "
                                                                "percentile in server runs, 100 otherwise")
    workers: int | Literal["auto"] = Field(1, description="closed loop: load processes on this host (Locust "
                                                          "master/worker when more than 1); auto: one per core "
                                                          "but one, at most one per user")
    remote_workers: int = Field(0, ge=0, description="closed loop: `servingbench worker --master HOST:PORT` "
                                                     "processes on other hosts each trial waits for")
    master_bind: str | None = Field(None, description="HOST:PORT the Locust master listens on; default: loopback "
                                                      "on a free port, or 0.0.0.0:5557 with remote workers")
    worker_wait_s: float = Field(300.0, gt=0, description="how long a trial waits for its load workers to connect")

    @field_validator("users")
    @classmethod
    def _positive_users(cls, users: list[int]) -> list[int]:
        if not users or any(u < 1 for u in users):
            raise ValueError("must be a non-empty list of positive user counts")
        return users

    @field_validator("target_qps", mode="before")
    @classmethod
    def _one_or_more_rates(cls, rates: Any) -> Any:
        return [rates] if isinstance(rates, (int, float)) and not isinstance(rates, bool) else rates

    @field_validator("target_qps")
    @classmethod
    def _positive_rates(cls, rates: list[float]) -> list[float]:
        if not rates or not all(0 < r < float("inf") for r in rates):
            raise ValueError("must be a positive rate or a non-empty list of positive rates")
        return list(dict.fromkeys(rates))

    @field_validator("workers")
    @classmethod
    def _some_workers(cls, workers: int | str) -> int | str:
        if isinstance(workers, int) and workers < 0:
            raise ValueError("must be 0 or more load processes, or auto")
        return workers

    @field_validator("master_bind")
    @classmethod
    def _host_and_port(cls, bind: str | None) -> str | None:
        host, _, port = (bind or "").rpartition(":")
        if bind is not None and not (host and port.isdigit() and 0 <= int(port) < 65536):
            raise ValueError(f"must be HOST:PORT, e.g. 0.0.0.0:5557, got '{bind}'")
        return bind

    @model_validator(mode="after")
    def _distributed_closed_loop(self) -> "LoadSettings":
        if self.workers == 0 and not self.remote_workers:
            raise ValueError("workers: 0 needs remote_workers (someone must send the requests)")
        if self.until_stable and (self.remote_workers or self.workers not in (1, "auto")):
            raise ValueError("until_stable needs the single load process: drop workers/remote_workers")
        return self

    @model_validator(mode="after")
    def _room_for_stability(self) -> "LoadSettings":
        if self.until_stable and self.max_duration_s < 3 * self.stability_window_s:
            raise ValueError(f"max_duration_s ({self.max_duration_s:g}) leaves no room for 3 stability windows of "
                             f"{self.stability_window_s:g} s")
        return self

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(cls, scenarios: list[str]) -> list[str]:
        unknown = [s for s in scenarios if s not in SCENARIOS]
        if not scenarios or unknown:
            raise ValueError(f"unknown scenario {unknown[0] if unknown else '(none given)'}; "
                             f"known: {', '.join(SCENARIOS)}")
        return list(dict.fromkeys(scenarios))


class ContainerSettings(_Strict):
    """`server.container`: every framework's server in a container (README "Containers")."""

    runtime: Literal["docker", "podman", "apptainer"] | None = Field(None, description="null: the first installed")
    images: dict[str, str] = Field(default_factory=dict, description="per framework: the image instead of its "
                                   "default (a registry name, docker://name or a .sif file)")
    image_dir: Path = Field(Path("images"), description="apptainer: where the .sif files built from `servingbench "
                            "images` definition files are (<framework>.sif)")
    gpus: bool = Field(False, description="give the container the host's NVIDIA GPUs (--gpus all, --nv)")


class ServerSettings(_Strict):
    """Settings that reach every framework; adapters read framework-specific ones from `options`."""

    threads: int = Field(1, ge=1, description="intra-op threads per model worker (1 on a shared CPU host)")
    workers: int = Field(1, ge=1)
    runtime: Literal["eager", "torchscript", "onnxruntime"] = Field(
        "torchscript", description="what runs the network inside the Python frameworks (TorchServe, FastAPI, Ray "
                                   "Serve, ...): the eager model, a TorchScript trace (as the study) or onnxruntime")
    device: str = Field("auto", description=f"where every framework runs the network: {DEVICE_WORDS}; auto is the "
                                            "first visible GPU, else the CPU (devices.py)")
    dtype: Dtype = Field("float32", description="the network's precision on that device (float16, bfloat16: the "
                                                "correctness check's tolerance follows)")
    startup_timeout_s: float = Field(300.0, gt=0)
    options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-framework extras")
    container: ContainerSettings | None = Field(None, description="null: servers run on this host")

    @field_validator("device")
    @classmethod
    def _device_word(cls, device: str) -> str:
        if not DEVICE_PATTERN.fullmatch(device):
            raise ValueError(f"must be {DEVICE_WORDS}, got '{device}'")
        return device


REDACTED = "<not saved>"  # a header value in study.yaml: it may be a credential


class EndpointSettings(_Strict):
    """A server someone else runs: where it is and what to send."""

    url: str
    method: Literal["GET", "POST", "PUT"] = "POST"
    payload: Path | None = Field(None, description="the body: a file, a folder (each file, sorted by name) or a "
                                                   ".jsonl file (each line a JSON body); a set is sent in turn")
    payload_order: RequestOrderKind = Field("round_robin", description="closed loop: a payload set in turn from "
                                                                       "each user's offset, or random (seeded)")
    payload_seed: int = 0
    content_type: str | None = Field(None, description="default: from each file's extension; JSONL: application/json")
    headers: dict[str, str] = Field(default_factory=dict)
    metrics_url: str | None = Field(None, description="a Prometheus metrics page read before and after each trial: "
                                                      "its counters' and histograms' deltas go to server_metrics")

    def for_results(self) -> dict[str, Any]:
        """As written into a results folder: header values (tokens, cookies) left out, their names kept."""
        return {**self.model_dump(mode="json"), "headers": {name: REDACTED for name in self.headers}}


TUNE_USERS = [1, 2, 4, 8, 16, 32, 64]  # Model Analyzer's doubling concurrency sweep
SEARCHES = ("auto", "grid", "optuna")


class TuneSettings(_Strict):
    """`servingbench tune`: search each framework's settings for the highest throughput whose
    `load.latency_percentile` stays under `load.latency_bound_ms`. Each sweep step is one closed-loop trial of
    `load.duration_s` after `load.warmup_s`; default and winner are re-measured `load.repetitions` times."""

    budget_minutes: float = Field(10.0, gt=0, description="per framework x model: no candidate starts that would "
                                                          "end past it (the default and the re-measure come on top)")
    search: Literal["auto", "grid", "optuna"] = Field("auto", description="auto: grid up to 12 candidates, then "
                                                                         "Optuna's TPE")
    knobs: list[str] | None = Field(None, description="the settings to search by name (workers, threads, runtime, "
                                                      "batch_size, ...); default: all a framework declares")
    users: list[int] = Field(default_factory=lambda: list(TUNE_USERS),
                             description="the closed-loop levels of each candidate's sweep, in order")
    price_per_core_hour: float | None = Field(None, ge=0)
    price_per_gpu_hour: float | None = Field(None, ge=0)

    @field_validator("users")
    @classmethod
    def _rising_users(cls, users: list[int]) -> list[int]:
        if not users or any(u < 1 for u in users) or users != sorted(set(users)):
            raise ValueError("must be rising positive user counts, e.g. [1, 2, 4, 8]")
        return users


class Study(_Strict):
    name: str = "custom"
    frameworks: list[str] = Field(default_factory=lambda: ["reference"])
    pipeline: list[Pipeline] = Field(default_factory=lambda: [DEFAULT_PIPELINE], description=(
        "end_to_end (every framework gets the raw sample and answers the task output), network_only (the network's "
        "tensor in and out, the client doing the rest), or both: each measured and ranked apart"))
    client_preprocess: Literal["once", "per_request"] = Field("once", description=(
        "network_only: the client's preprocessing done once per sample before the trial (measured apart, as the "
        "study), or for every request inside the closed loop, its cost in each latency and under load"))
    models: list[ModelEntry] = Field(default_factory=lambda: [ModelEntry(name="resnet50")],
                                     description="registered names, or your own models (hf, network, python)")
    size: Literal["tiny", "real"] = "tiny"
    weights: str = "default"
    seed: int = 0
    check_correctness: bool = True
    accuracy: bool = Field(False, description="also run LoadGen's AccuracyOnly mode over the samples and score "
                                              "it (top-1 agreement, WER, ROUGE) against the in-process model")
    inprocess_iterations: int = Field(20, ge=0, description="in-process predictions timed per model")
    load: LoadSettings = Field(default_factory=LoadSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    endpoint: EndpointSettings | None = None
    slo: list[str] = Field(default_factory=list, description="SLO gates every measured cell must pass, e.g. "
                                                             "p99_ms<=200, throughput_rps>=50, loadgen=valid")
    tune: TuneSettings | None = Field(None, description="present: `servingbench run` tunes each framework's "
                                                        "settings (as `servingbench tune` does) instead")

    @field_validator("frameworks", "models", "pipeline")
    @classmethod
    def _non_empty(cls, names: list) -> list:
        if not names:
            raise ValueError("must name at least one")
        return names

    @model_validator(mode="after")
    def _per_request_in_the_closed_loop(self) -> "Study":
        if self.client_preprocess == "per_request":
            if self.load.scenarios != [CLOSED_LOOP]:
                raise ValueError("client_preprocess per_request runs in the closed loop only (load.scenarios: "
                                 "[closed]); LoadGen sends requests made before the run")
            if self.load.remote_workers:
                raise ValueError("client_preprocess per_request needs the model's processing files on the load "
                                 "host: it can't run on remote workers")
        return self

    @field_validator("pipeline", mode="before")
    @classmethod
    def _one_or_more(cls, pipeline: Any) -> Any:
        """`pipeline: network_only` or a list; each named once."""
        pipelines = [pipeline] if isinstance(pipeline, str) else pipeline
        if isinstance(pipelines, list) and len(set(map(str, pipelines))) < len(pipelines):
            raise ValueError("names a pipeline twice")
        return pipelines

    @field_validator("models", mode="before")
    @classmethod
    def _names_are_entries(cls, models: Any) -> Any:
        """A bare name is a registered model."""
        return [{"name": m} if isinstance(m, str) else m for m in models] if isinstance(models, list) else models

    @field_validator("models")
    @classmethod
    def _distinct_and_absolute(cls, entries: list[ModelEntry]) -> list[ModelEntry]:
        """Paths made absolute against the working directory, as every path servingbench takes."""
        names = [e.name for e in entries]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"model {repeated[0]!r} is named twice; give your own models names of their own")
        return [e.resolved(Path.cwd()) for e in entries]

    @field_serializer("models")
    def _names_where_registered(self, models: list[ModelEntry]) -> list:
        # study.yaml as written: registered models by name, your own with their definition.
        return [m.name if m == ModelEntry(name=m.name) else m.model_dump(mode="json", exclude_none=True)
                for m in models]

    @field_validator("slo")
    @classmethod
    def _parseable_gates(cls, gates: list[str]) -> list[str]:
        try:
            parse_gates(gates)
        except ServingbenchError as exc:
            raise ValueError(str(exc)) from None
        return gates


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("servingbench.presets").iterdir()
                  if p.name.endswith(".yaml"))


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ServingbenchError(f"{origin}: invalid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    if data is None:  # an empty file is more likely a mistake than a wish for every default
        raise ServingbenchError(f"{origin}: empty study file; give at least its frameworks and models")
    if not isinstance(data, dict):
        raise ServingbenchError(f"{origin}: a study file must be a mapping of fields, got {type(data).__name__}")
    return data


def _validate(data: dict[str, Any], origin: str, model: type[_Strict] = Study) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ServingbenchError(f"{origin}: field '{field}': {err['msg']}{more}") from None


def load_study(name_or_path: str | None, overrides: dict[str, Any] | None = None) -> Study:
    """A preset name or a YAML path, with CLI overrides (dotted keys, e.g. "load.users") applied on top."""
    name_or_path = name_or_path or "quick"
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ServingbenchError(f"study file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ServingbenchError(f"cannot read study file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ServingbenchError(f"study file {path} is not UTF-8 text") from None
        data, origin = _read_yaml(text, str(path)), str(path)
    elif name_or_path in preset_names():
        text = resources.files("servingbench.presets").joinpath(f"{name_or_path}.yaml").read_text()
        data, origin = _read_yaml(text, f"preset {name_or_path}"), f"preset {name_or_path}"
    else:
        raise ServingbenchError(
            f"unknown study '{name_or_path}': not a file; presets are {', '.join(preset_names())}")
    overrides = dict(overrides or {})
    if overrides.get("models") is not None:  # a name the study defines picks that definition
        listed = data.get("models")
        defined = {m["name"]: m for m in listed if isinstance(m, dict) and isinstance(m.get("name"), str)} \
            if isinstance(listed, list) else {}
        overrides["models"] = [defined.get(name, name) for name in overrides["models"]]
    return _validate(with_values(data, overrides), origin)


def with_values(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`data` with dotted keys (e.g. "load.users", "server.options.triton.max_batch_size") set; None leaves a key."""
    for dotted, value in values.items():
        if value is None:
            continue
        target = data
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents, start=1):
            target = target.setdefault(key, {})
            if not isinstance(target, dict):  # e.g. `load: 5` in the file, then --users
                raise ServingbenchError(f"field '{'.'.join(parents[:depth])}': must be a mapping of settings, "
                                        f"got {type(target).__name__}")
        target[leaf] = value
    return data


def with_settings(study: Study, settings: dict[str, Any], origin: str = "settings") -> Study:
    """The study with dotted-key settings applied, validated again (a tuning candidate's study)."""
    return _validate(with_values(study.model_dump(mode="json"), settings), origin)


def load_settings(values: dict[str, Any], origin: str = "load options") -> LoadSettings:
    return _validate(values, origin, LoadSettings)


def dump_study(study: Study, header_values: bool = False) -> str:
    """study.yaml; endpoint header values only with `header_values` (a study file jobs run from, not results)."""
    data = study.model_dump(mode="json")
    if study.endpoint is not None and not header_values:
        data["endpoint"] = study.endpoint.for_results()
    return yaml.safe_dump(data, sort_keys=False)
