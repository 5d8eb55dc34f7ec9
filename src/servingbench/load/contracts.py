"""The load layer's contracts: what callers hand the load engines, and what the engines hand back.

Dependency-free (pydantic only), because the load-generator processes import it and plans and
results cross the process boundary as JSON. Engines see prepared bytes only: nothing here knows a
framework or a model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Protocol = Literal["http", "grpc"]
LOADGEN_SCENARIOS = ("single_stream", "multi_stream", "server", "offline")  # MLPerf LoadGen's scenarios


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64")


class PreparedRequest(_Contract):
    """One request, fully encoded before timing starts."""

    path: str  # HTTP: path with query; gRPC: the full method name, e.g. /inference.GRPCInferenceService/ModelInfer
    body: bytes = b""
    method: str = "POST"  # HTTP only
    headers: dict[str, str] = {}
    sample: str = ""
    protocol: Protocol = "http"  # gRPC: `body` is the serialised request message
    # Work the client does before sending (decode, resize, feature extraction, tokenisation) for
    # frameworks whose clients preprocess, as Triton's did in the study: measured, reported next to
    # the latency, so server-side and client-side preprocessing compare fairly.
    client_preprocess_ms: float = 0.0


class ClientStep(_Contract):
    """Client work done for every request inside the load loop and timed with it (the study's client preprocessing,
    paid under load): the load process imports `factory` ("module:function") once, calls it with `argument`, and
    sends what the function it returns makes of each planned request. The engines only call it: what it does is the
    caller's."""

    factory: str
    argument: str = ""


class WorkerPlan(_Contract):
    """What every load-generator process is given: where to send what, and where to write."""

    trial_id: str
    base_url: str  # scheme://host:port; the scheme is informative, `protocol` decides how to send
    requests: list[PreparedRequest]
    client_step: ClientStep | None = None  # requests as planned are turned into those sent, each time, in the loop
    request_timeout_s: float
    records_path: Path
    result_path: Path | None = None  # set by the launcher: the worker writes its result there

    @model_validator(mode="after")
    def _one_protocol(self) -> "WorkerPlan":
        if not self.requests:
            raise ValueError("a load plan needs at least one request")
        if len({r.protocol for r in self.requests}) > 1:
            raise ValueError("a load plan's requests must all use one protocol")
        return self

    @property
    def protocol(self) -> Protocol:
        return self.requests[0].protocol


RequestOrderKind = Literal["round_robin", "random"]


class RequestOrder(_Contract):
    """How a closed-loop user picks its next request: in turn from its own offset ("round_robin"), or at random
    from a generator seeded by `seed` and the user's number, so the same seed repeats each user's sequence."""

    kind: RequestOrderKind = "round_robin"
    seed: int = 0


class ClosedLoopPlan(WorkerPlan):
    users: int
    order: RequestOrder = RequestOrder()
    warmup_s: float
    duration_s: float
    until_stable: bool = False  # measure in windows until they agree, instead of for duration_s
    stability_window_s: float = 5.0
    stability_tolerance_pct: float = 10.0
    max_duration_s: float = 300.0
    # Locust's distributed mode: local worker processes (1 and no remote ones: the single plain process),
    # `servingbench worker` processes on other hosts, and where the master listens for them (HOST:PORT).
    load_workers: int = 1
    remote_workers: int = 0
    master_bind: str | None = None
    worker_wait_s: float = 300.0  # how long the master waits for its workers to connect

    @model_validator(mode="after")
    def _workers(self) -> "ClosedLoopPlan":
        if self.load_workers < 0 or self.remote_workers < 0 or self.load_workers + self.remote_workers < 1:
            raise ValueError("a closed loop needs at least one load worker, local or remote")
        if self.distributed and self.until_stable:
            raise ValueError("until_stable needs the single load process; drop the load workers or until_stable")
        return self

    @property
    def distributed(self) -> bool:
        return self.load_workers > 1 or self.remote_workers > 0

    @property
    def longest_s(self) -> float:
        waiting = self.worker_wait_s if self.remote_workers else 0.0
        return waiting + self.warmup_s + (self.max_duration_s if self.until_stable else self.duration_s)


class TrialAssignment(_Contract):
    """Master to load worker: the trial, and where this worker's user ids start."""

    plan: ClosedLoopPlan
    first_user_id: int


class WorkerWindow(_Contract):
    """Master to load worker: the measurement window in the worker's own perf_counter_ns clock."""

    start_ns: int
    end_ns: int


class WorkerRecords(_Contract):
    """Load worker to master, once its users stopped: its records (a Parquet file's bytes) and its CPU."""

    host: str
    parquet: bytes
    records: int
    cpu_percent: float


class LoadWorkerReport(_Contract):
    """One load worker of a distributed trial: its clock against the master's, measured at connect
    (offset = worker clock - master clock, from the round trip with the least delay), and what it did."""

    host: str
    clock_offset_ns: int
    round_trip_ns: int
    records: int
    cpu_percent: float = Field(description="during the window, % of one core")


class LoadGenPlan(WorkerPlan):
    scenario: str  # one of LOADGEN_SCENARIOS
    duration_s: float
    log_dir: Path
    target_qps: float = 10.0           # Server: the Poisson arrival rate; Offline: the expected rate
    latency_bound_ms: float = 100.0    # Server: the bound a VALID run keeps `latency_percentile` under
    latency_percentile: float = 99.0
    min_query_count: int = 100
    accuracy: bool = False             # LoadGen's AccuracyOnly mode: every sample once, answers logged
    senders: int = 64                  # concurrent connections available to LoadGen's queries

    @field_validator("scenario")
    @classmethod
    def _loadgen_scenario(cls, scenario: str) -> str:
        if scenario not in LOADGEN_SCENARIOS:
            raise ValueError(f"unknown LoadGen scenario '{scenario}'; known: {', '.join(LOADGEN_SCENARIOS)}")
        return scenario

    @property
    def shortest_s(self) -> float:
        """The least time the run takes: its min duration, or in Server runs its min queries at the target rate."""
        if self.scenario == "server":
            return max(self.duration_s, self.min_query_count / self.target_qps)
        return self.duration_s


class WindowStability(_Contract):
    """until_stable: how many windows were measured and whether the last ones agreed."""

    windows: int
    stable: bool


class ClosedLoopResult(_Contract):
    """When the measurement window opened and closed (perf_counter_ns) and what the generator used."""

    measure_start_ns: int
    measure_end_ns: int
    load_cpu_percent: float  # all load processes together (master and workers), % of one core
    stability: WindowStability | None = None
    load_workers: list[LoadWorkerReport] = []

    @property
    def busiest_load_cpu_percent(self) -> float:
        """The busiest single load process: the one that may have limited the throughput."""
        return max((w.cpu_percent for w in self.load_workers), default=self.load_cpu_percent)


class LoadGenResult(_Contract):
    """The span LoadGen's test ran in (perf_counter_ns) and the generator's CPU over it."""

    start_ns: int
    end_ns: int
    load_cpu_percent: float
