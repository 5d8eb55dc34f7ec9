"""The versioned summary.json schema. Bump SCHEMA_VERSION on any incompatible change."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

from servingbench.pipeline import Pipeline, served_label

SCHEMA_VERSION = 1


class LatencyMs(BaseModel):
    mean: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float


class Estimate(BaseModel):
    """A mean across repetitions with its 95% confidence interval (None with fewer than 2 values)."""

    mean: float | None
    ci95_low: float | None
    ci95_high: float | None
    n: int


class TrialCounts(BaseModel):
    requests: int = Field(description="requests sent inside the measurement window")
    ok: int
    failed: int
    duration_s: float
    throughput_rps: float = Field(description="successful responses completed per second of the window")
    failures_per_s: float
    latency_ms: LatencyMs | None = Field(description="over successful requests sent in the window")
    errors: dict[str, int] = Field(default_factory=dict)
    longest_silence_ms: float | None = Field(None, description="the longest span of the window with no answer")
    longest_silence_at_s: float | None = Field(None, description="where that span began, seconds into the window")
    client_send_ms: LatencyMs | None = Field(None, description="the client writing each request (write began -> "
                                                               "request fully written); None: the engine can't tell")
    client_receive_ms: LatencyMs | None = Field(None, description="the client reading each answer (first byte -> "
                                                                  "answer complete)")
    client_lag_ms: LatencyMs | None = Field(None, description="the load generator's own delay: the answer "
                                                              "complete (kernel's stamp) -> the generator had read it")
    client_send_early_late_ms: tuple[float, float] | None = Field(
        None, description="mean client send time over the window's first and last thirds: growing means the client "
                          "or the network fell behind")


class Stat(BaseModel):
    mean: float
    max: float


class TrialResources(BaseModel):
    """Sampled at a fixed interval during the measurement window (psutil; NVML where a GPU exists)."""

    interval_s: float
    samples: int
    server_cpu_percent: Stat | None = Field(None, description="server process tree, % of one core")
    server_rss_mb: Stat | None = None
    load_cpu_percent: Stat | None = Field(None, description="load generator process, % of one core")
    load_rss_mb: Stat | None = None
    gpu_util_percent: Stat | None = None
    gpu_memory_mb: Stat | None = None
    gpu_power_w: Stat | None = None


class Stability(BaseModel):
    """Closed loop measured until stable: the last `windows_agreeing` windows agreed within the tolerance."""

    windows: int = Field(description="windows measured after warm-up")
    stable: bool
    window_s: float
    tolerance_pct: float
    windows_agreeing: int = 3


class LoadWorker(BaseModel):
    """One load worker of a distributed closed-loop trial (Locust master/worker)."""

    host: str
    clock_offset_ms: float = Field(description="its clock minus the master's, measured at connect; its records "
                                               "were moved onto the master's clock by it")
    round_trip_ms: float = Field(description="the round trip of that clock check: the offset is good to half of it")
    records: int = Field(description="requests it recorded, warm-up included")
    cpu_percent: float = Field(description="during the window, % of one core")


class LoadGenVerdict(BaseModel):
    """LoadGen's own verdict on one run, read from its summary and detail logs."""

    valid: bool
    result: str = Field(description="VALID | INVALID, as LoadGen wrote it")
    scheduled_per_s: float | None = Field(description="Server and Offline runs: the rate LoadGen scheduled")
    early_stopping_satisfied: bool
    performance_constraints_satisfied: bool
    queries: int | None = Field(description="result_query_count from mlperf_log_detail.txt")
    samples_per_query: int = 1
    bounded_latency_ms: float | None = Field(None, description="the latency at the bounded percentile")


class TrialSummary(TrialCounts):
    trial_id: str
    repetition: int
    records_file: str = Field(description="Parquet file of RequestRecords, relative to the results folder")
    started_at: str
    load_cpu_percent: float = Field(description="load generator CPU during the window, % of one core")
    server_metrics: dict[str, float] = Field(default_factory=dict)
    resources: TrialResources | None = None
    telemetry_file: str | None = Field(None, description="CSV of the resource samples, relative path")
    loadgen: LoadGenVerdict | None = Field(None, description="LoadGen scenarios: its VALID/INVALID verdict, rates, "
                                                             "and the latency at the bounded percentile")
    loadgen_log_dir: str | None = Field(None, description="LoadGen's own mlperf_log_* files, relative path")
    target_qps: float | None = Field(None, description="LoadGen Server scenario: the Poisson arrival rate asked for")
    send_delay_ms: LatencyMs | None = Field(None, description="LoadGen scenarios: how late requests left after "
                                                              "LoadGen issued them (queued for a free sender)")
    stability: Stability | None = None
    load_workers: list[LoadWorker] = Field(default_factory=list, description="distributed closed loop: each load "
                                                                             "worker (empty: one load process)")
    server_problem: str | None = Field(None, description="the server died or stopped answering during this trial: "
                                                         "it is kept as evidence, never averaged")
    warnings: list[str] = Field(default_factory=list)

    @computed_field(description="load generator CPU time per request sent in the window, microseconds")  # type: ignore[prop-decorator]
    @property
    def load_cpu_us_per_request(self) -> float | None:
        if not self.requests:
            return None
        return self.load_cpu_percent / 100 * self.duration_s / self.requests * 1e6

    @property
    def measured(self) -> bool:
        """A measurement of the server: it stayed up and answered at least once."""
        return self.server_problem is None and self.ok > 0


class Cost(BaseModel):
    """What a request costs at a measured point, from the server's CPU (and GPU) telemetry."""

    server_cpu_s_per_request: float | None = Field(description="server process tree CPU-seconds per answered "
                                                               "request (its mean CPU % x window / answers)")
    requests_per_core_s: float | None = Field(description="answers per second of one core busy serving them "
                                                          "(1 / server_cpu_s_per_request)")
    gpu_s_per_request: float | None = Field(None, description="GPU-seconds (mean utilisation x window) per answer")
    price_per_core_hour: float | None = None
    price_per_gpu_hour: float | None = None
    cost_per_million: float | None = Field(None, description="CPU (and GPU) cost of a million requests at these "
                                                             "prices; None without a price")


class Accuracy(BaseModel):
    """A LoadGen AccuracyOnly run scored against the model run in-process (the served answers as labels' stand-in)."""

    metric: str = Field(description="top1_agreement | wer | rouge_l")
    value: float
    threshold: float
    higher_is_better: bool
    ok: bool
    samples: int
    log_dir: str = Field("", description="LoadGen's logs, mlperf_log_accuracy.json included, relative path")


class Correctness(BaseModel):
    ok: bool | None = Field(description="None: not checked (reason says why)")
    reason: str = ""
    samples_checked: int = 0
    accuracy: Accuracy | None = None


class CapacityProbe(BaseModel):
    target_qps: float
    valid: bool
    latency_ms: float | None = Field(description="the bounded percentile's latency, as LoadGen measured it")
    throughput_rps: float
    trial_id: str


class Capacity(BaseModel):
    """The highest Server-scenario rate LoadGen found VALID with the percentile under the bound."""

    latency_bound_ms: float
    percentile: float
    max_qps: float | None = Field(description="None: no rate tried was VALID")
    upper_qps: float | None = Field(description="the lowest rate found INVALID (None: none was)")
    probes: list[CapacityProbe] = Field(default_factory=list)

    @property
    def bound(self) -> str:
        return f"p{self.percentile:g} <= {self.latency_bound_ms:g} ms"


CellStatus = Literal["ok", "unsupported", "failed", "running"]


class PayloadCounts(BaseModel):
    """One payload of `servingbench load`, over the requests its cell's repetitions sent in their windows."""

    payload: str = Field(description="its file name, or line-<n> of a JSONL file")
    body_bytes: int
    bytes_out: float | None = Field(description="mean bytes sent per request as its engine recorded them: the "
                                                "closed loop counts HTTP headers, LoadGen the body")
    requests: int
    failed: int
    latency_ms: LatencyMs | None = Field(description="over its successful requests, all repetitions pooled")


class GateVerdict(BaseModel):
    """One SLO gate (analysis/slo.py) held against one cell's results."""

    gate: str = Field(description="the gate as written, e.g. p99_ms<=200")
    observed: float | None = Field(description="the cell's value of the gate's metric")
    passed: bool | None = Field(description="None: the cell does not measure the metric (reason says why)")
    reason: str = ""


class CellSummary(BaseModel):
    framework: str
    model: str
    pipeline: Pipeline = Field("end_to_end", description="what the framework was handed and answered (config.Pipeline)")
    scenario: str = "closed"
    users: int = Field(description="closed-loop users; 0 for LoadGen scenarios")
    target_qps: float | None = None
    latency_bound_ms: float | None = Field(None, description="LoadGen server: the bound its verdict held "
                                                             "latency_percentile to")
    latency_percentile: float | None = None
    status: CellStatus
    reason: str = ""
    device: str = Field("", description="where the network ran: cpu, cuda:N (its name), with a dtype below float32; "
                                        "empty: not servingbench's to place (an endpoint)")
    correct: Correctness | None = None
    repetitions: list[TrialSummary] = Field(default_factory=list)
    requests: int = 0
    failed: int = 0
    throughput_rps: Estimate | None = None
    failures_per_s: Estimate | None = None
    latency_ms: dict[str, float] = Field(default_factory=dict, description="mean across repetitions")
    latency_ms_ci95: dict[str, Estimate] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    log_tail: str = ""
    client_preprocess_ms: float = Field(0.0, description="mean client-side preprocessing per sample, "
                                                          "not inside latency_ms (done before timing)")
    capacity: Capacity | None = Field(None, description="scenario 'capacity': the search and its answer")
    slo: list[GateVerdict] = Field(default_factory=list, description="the SLO gates checked, on 'ok' cells")
    payloads: list[PayloadCounts] = Field(default_factory=list, description="`servingbench load` with a payload: "
                                                                            "requests and latency per payload")
    cost: Cost | None = Field(None, description="server CPU (and GPU) seconds per answer over the measured trials "
                                                "(servingbench tune adds prices)")

    @property
    def label(self) -> str:
        """The cell in words for one-line messages: "torchserve / resnet50 / 10 users" (network_only said)."""
        return f"{served_label(self.framework, self.pipeline)} / {self.model} / {self.level}"

    @property
    def level(self) -> str:
        """The load level in words: "10 users", "server 50 qps", "capacity p99 <= 100 ms", "offline"."""
        if self.scenario == "closed":
            return f"{self.users} users"
        if self.scenario == "server" and self.target_qps:
            return f"server {self.target_qps:g} qps"
        if self.capacity:
            return f"capacity {self.capacity.bound}"
        return self.scenario

    @property
    def level_id(self) -> str:
        """The load level in file names: "u10", "server-50qps", "offline", "capacity"."""
        if self.scenario == "closed":
            return f"u{self.users}"
        if self.scenario == "server" and self.target_qps:
            return f"server-{self.target_qps:g}qps"
        return self.scenario

    @property
    def key(self) -> tuple[str, str, str, str, int, float | None]:
        """What tells cells apart: framework, model, pipeline, scenario and load level (users, a server rate)."""
        rate = self.target_qps if self.scenario == "server" else None
        return self.framework, self.model, self.pipeline, self.scenario, self.users, rate


class Deployment(BaseModel):
    """What it took to get one model served by one framework: evidence for the usability scorecard."""

    framework: str
    model: str
    pipeline: Pipeline = "end_to_end"
    status: CellStatus
    reason: str = ""
    package_files: int = Field(0, description="files servingbench generated to package the model")
    package_bytes: int = 0
    package_text_lines: int = Field(0, description="lines of generated text files (configs, handlers)")
    runtime: str = Field("", description="what ran the network inside the server: eager, torchscript, onnxruntime")
    device: str = Field("", description="the device it ran on (CellSummary.device)")
    startup_s: float | None = Field(None, description="cold start: launch to ready")
    idle_rss_mb: float | None = Field(None, description="server process tree memory once ready, before load")


class ModelInfo(BaseModel):
    name: str
    task: str
    size: str
    weights: str
    device: str = Field("", description="where the in-process model ran (CellSummary.device)")
    inprocess_latency_ms: LatencyMs | None = Field(None, description="the lower bound any server can reach")


class Summary(BaseModel):
    schema_version: int = SCHEMA_VERSION
    servingbench_version: str
    study: str
    started_at: str
    updated_at: str
    complete: bool = False
    resumed_at: list[str] = Field(default_factory=list, description="when `run --resume` went on with the study")
    models: list[ModelInfo] = Field(default_factory=list)
    deployments: list[Deployment] = Field(default_factory=list)
    cells: list[CellSummary] = Field(default_factory=list)

    def keep_deployment(self, deployment: Deployment) -> None:
        """Add the deployment unless this very record is kept already (it is updated in place as it goes)."""
        if not any(d is deployment for d in self.deployments):
            self.deployments.append(deployment)

    def put_cell(self, cell: CellSummary) -> None:
        """Insert or replace the cell with the same key (framework, model, pipeline, scenario and load level)."""
        for i, old in enumerate(self.cells):
            if old.key == cell.key:
                self.cells[i] = cell
                return
        self.cells.append(cell)
