"""One trial over time: answers, failures, p50/p99 latency and the server's CPU in 1-second bins, from the
trial's saved request records and resource telemetry (so any results folder re-renders them).

Requests are binned by when they completed (end_ns), from the trial's first send. Each row counts the
requests of one phase: a second in which the measurement began has a warm-up row (warm-up requests that
completed in it) and a measure row, so the measured rows add up to the requests the trial measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from servingbench.analysis.stats import latency_summary

BIN_NS = 1_000_000_000
WARMUP, MEASURE = "warmup", "measure"
RECORD_COLUMNS = ["phase", "sent_ns", "end_ns", "latency_us", "ok"]


@dataclass(frozen=True)
class TimeBin:
    second: int        # the bin is [second, second + 1) s after the trial's first request was sent
    phase: str         # of the requests counted: warmup | measure
    requests: int      # requests of that phase that completed (answered or failed) in the bin
    ok: int
    failed: int
    throughput_rps: float  # answers per second of the bin the trial covered
    p50_ms: float | None  # over the successful ones; None: none
    p99_ms: float | None
    server_cpu_percent: float | None  # mean of the telemetry samples in the bin (% of one core); None: none
    covered_s: float = 1.0  # of the bin, up to the trial's last answer: the last second is mostly shorter


COLUMNS = tuple(TimeBin.__dataclass_fields__)


@dataclass(frozen=True)
class TrialSeries:
    bins: list[TimeBin]
    warmup_end_s: float  # where the measurement began, seconds after the first send (0: no warm-up)


def bin_trial(records: pa.Table, telemetry: pa.Table | None = None) -> TrialSeries:
    """`records`: at least RECORD_COLUMNS; `telemetry`: t_ns and server_cpu_percent samples on the same clock."""
    if records.num_rows == 0:
        return TrialSeries([], 0.0)
    sent = records.column("sent_ns").to_numpy()
    measured = np.asarray(records.column("phase").to_numpy(zero_copy_only=False) == MEASURE)
    start_ns = int(sent.min())
    measure_start_ns = int(sent[measured].min()) if measured.any() else None
    second = (records.column("end_ns").to_numpy() - start_ns) // BIN_NS
    ok = records.column("ok").to_numpy(zero_copy_only=False).astype(bool)
    latency_ms = records.column("latency_us").to_numpy() / 1000.0
    cpu = _cpu_per_second(telemetry, start_ns)
    groups = {(int(s), bool(m)): rows for (s, m), rows in _group_rows(second, measured).items()}
    last_end_s = (int(records.column("end_ns").to_numpy().max()) - start_ns) / 1e9
    bins = []
    for s in range(int(second.max()) + 1):
        # The answers still in flight when the trial stops come back in a fraction of a second: a rate over
        # that fraction, not a drop.
        covered_s = min(1.0, last_end_s - s) or 1.0
        phases = [m for m in (False, True) if (s, m) in groups]
        if not phases:  # nothing completed: a silent second, in whichever phase it lies
            phases = [measure_start_ns is not None and start_ns + (s + 1) * BIN_NS > measure_start_ns]
        for is_measure in phases:
            rows = groups.get((s, is_measure), np.empty(0, dtype=int))
            answered = latency_ms[rows[ok[rows]]]
            latency = latency_summary(answered)  # the statistics of every table, per second
            good = int(answered.size)
            bins.append(TimeBin(s, MEASURE if is_measure else WARMUP, int(rows.size), good, int(rows.size) - good,
                                good / covered_s, latency.p50 if latency else None,
                                latency.p99 if latency else None, cpu.get(s), covered_s))
    warmup_end_s = (measure_start_ns - start_ns) / 1e9 if measure_start_ns is not None else \
        (int(second.max()) + 1) * BIN_NS / 1e9
    return TrialSeries(bins, warmup_end_s)


def _group_rows(second: np.ndarray, measured: np.ndarray) -> dict[tuple[int, bool], np.ndarray]:
    """Row indexes per (second, is measure)."""
    key = second * 2 + measured
    order = np.argsort(key, kind="stable")
    keys, starts = np.unique(key[order], return_index=True)
    return {(int(k) // 2, bool(k % 2)): rows for k, rows in zip(keys, np.split(order, starts[1:]))}


def _cpu_per_second(telemetry: pa.Table | None, start_ns: int) -> dict[int, float]:
    if telemetry is None or telemetry.num_rows == 0:
        return {}
    t_ns = telemetry.column("t_ns").to_numpy(zero_copy_only=False).astype(float)
    cpu = telemetry.column("server_cpu_percent").to_numpy(zero_copy_only=False).astype(float)
    known = ~np.isnan(cpu) & (t_ns >= start_ns)
    seconds = ((t_ns[known] - start_ns) // BIN_NS).astype(int)
    return {int(s): float(cpu[known][seconds == s].mean()) for s in np.unique(seconds)}


def read_trial_series(records_path: Path, telemetry_path: Path | None) -> TrialSeries:
    """A trial's series from its files in a results folder (telemetry optional)."""
    records = pq.read_table(records_path, columns=RECORD_COLUMNS)
    telemetry = None
    if telemetry_path is not None and telemetry_path.is_file():
        telemetry = pa_csv.read_csv(telemetry_path, convert_options=pa_csv.ConvertOptions(
            include_columns=["t_ns", "server_cpu_percent"],
            column_types={"t_ns": pa.int64(), "server_cpu_percent": pa.float64()}))
    return bin_trial(records, telemetry)
