"""The versioned tune.json schema: what `servingbench tune` found for each framework x model.

Each candidate configuration's trials are an ordinary results folder (summary.json, requests/, telemetry/)
under the tune folder; tune.json points at them and holds what the search concluded.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from servingbench.results.schema import Cost, Estimate

TUNE_SCHEMA_VERSION = 1
DEFAULT_CANDIDATE = "default"  # the id of the study's own settings


class TunedKnob(BaseModel):
    """One setting the search could change, with the values it could take on this host."""

    name: str = Field(description="short name: workers, threads, runtime, batch_size, ...")
    key: str = Field(description="the dotted study key it sets, e.g. server.options.torchserve.batch_size")
    values: list[Any]


class SweepStep(BaseModel):
    """One closed-loop level of a candidate's sweep (one trial)."""

    users: int
    throughput_rps: float
    latency_ms: float | None = Field(description="the bounded percentile's latency at this level")
    failed: int
    held: bool = Field(description="the percentile stayed under the bound and no request failed")


class Candidate(BaseModel):
    """One configuration measured the way Model Analyzer does: closed-loop users doubled until the bound is
    crossed (or throughput stops growing); its value is the throughput at the best level that held."""

    id: str = Field(description=f"'{DEFAULT_CANDIDATE}' or the settings in words, e.g. 'workers=2 threads=1'")
    settings: dict[str, Any] = Field(description="dotted study key -> value ({} for the study's own settings)")
    results_dir: str = Field(description="its trials as an ordinary results folder, relative to the tune folder")
    status: Literal["ok", "failed"]
    reason: str = ""
    correct: bool | None = None
    steps: list[SweepStep] = Field(default_factory=list)
    best_users: int | None = Field(None, description="the level that held with the highest throughput")
    throughput_rps: float | None = Field(None, description="at best_users; None when no level held")
    latency_ms: float | None = Field(None, description="the bounded percentile at best_users")
    wall_s: float = Field(description="launch to stop, sweep included")


class Confirmation(BaseModel):
    """A configuration re-measured at its best level with repetitions (CIs), then by a LoadGen Server run at the
    rate it reached."""

    candidate: str
    results_dir: str
    users: int
    throughput_rps: Estimate
    latency_ms: Estimate = Field(description="the bounded percentile across repetitions")
    loadgen_target_qps: float | None = None
    loadgen_valid: bool | None = Field(None, description="LoadGen's verdict at that rate (None: not run or failed)")
    loadgen_latency_ms: float | None = Field(None, description="the bounded percentile LoadGen measured")
    loadgen_unmet: list[str] = Field(default_factory=list, description="INVALID: what LoadGen found unmet (the "
                                                                       "latency bound, early stopping: too few "
                                                                       "queries to certify the percentile, ...)")
    cost: Cost | None = None
    reason: str = Field("", description="why something is missing (a failed re-measure, a LoadGen run that failed)")


class WrittenConfig(BaseModel):
    """The winning configuration in the framework's own format, and a study that reruns it."""

    folder: str = Field(description="relative to the tune folder")
    files: list[str] = Field(description="relative to `folder`")
    command: str = Field(description="how to serve it with the framework's own tool, from `folder`")
    study: str = Field(description="the study YAML that reruns the tuned configuration, relative to the tune folder")


class TuneResult(BaseModel):
    """One framework x model: the search, its winner, and default vs tuned re-measured."""

    framework: str
    model: str
    status: Literal["ok", "unsupported", "failed", "running"]
    reason: str = ""
    search: str = Field("", description="grid | optuna")
    knobs: list[TunedKnob] = Field(default_factory=list)
    space_size: int = 0
    budget_s: float
    search_wall_s: float = 0.0
    candidates: list[Candidate] = Field(default_factory=list, description="the default first, then in search order")
    winner: str | None = Field(None, description="the candidate with the highest throughput at the bound")
    default: Confirmation | None = None
    tuned: Confirmation | None = None
    gain_pct: float | None = Field(None, description="tuned over default throughput at the bound, re-measured means")
    config: WrittenConfig | None = None
    warnings: list[str] = Field(default_factory=list)


class TuneSummary(BaseModel):
    schema_version: int = TUNE_SCHEMA_VERSION
    servingbench_version: str
    study: str
    started_at: str
    updated_at: str
    complete: bool = False
    latency_bound_ms: float
    percentile: float
    host_cores: int
    host_gpus: int
    results: list[TuneResult] = Field(default_factory=list)

    def put(self, result: TuneResult) -> None:
        for i, old in enumerate(self.results):
            if (old.framework, old.model) == (result.framework, result.model):
                self.results[i] = result
                return
        self.results.append(result)
