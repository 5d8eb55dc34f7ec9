"""Exact statistics from raw request records.

Percentiles are computed from every recorded latency (numpy's linear interpolation between
order statistics, never from histograms or rounded values). Across repetitions, a cell reports
the mean of each trial statistic with a 95% confidence interval from Student's t distribution.
"""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from scipy import stats as scipy_stats

from servingbench.analysis.cost import request_cost
from servingbench.analysis.warnings import cell_warnings
from servingbench.results.schema import CellSummary, Estimate, LatencyMs, TrialCounts

PERCENTILES = (50, 90, 95, 99)


def latency_summary(latencies_ms: np.ndarray) -> LatencyMs | None:
    if latencies_ms.size == 0:
        return None
    p50, p90, p95, p99 = np.percentile(latencies_ms, PERCENTILES)
    return LatencyMs(mean=float(latencies_ms.mean()), min=float(latencies_ms.min()), p50=float(p50),
                     p90=float(p90), p95=float(p95), p99=float(p99), max=float(latencies_ms.max()))


def summarize_records(records: pa.Table, measure_start_ns: int, measure_end_ns: int) -> TrialCounts:
    """Throughput and failures count completions inside the window; latency covers requests sent in it.

    Counting completions in [start, end] is unbiased whatever the request length; latency over
    requests sent in the window includes the last ones that finish after it closes.
    """
    sent = records.column("sent_ns").to_numpy()
    end = records.column("end_ns").to_numpy()
    ok = records.column("ok").to_numpy(zero_copy_only=False)
    latency_ms = records.column("latency_us").to_numpy() / 1000.0
    window_s = (measure_end_ns - measure_start_ns) / 1e9
    in_window_sent = (sent >= measure_start_ns) & (sent < measure_end_ns)
    in_window_done = (end >= measure_start_ns) & (end <= measure_end_ns)
    errors = records.column("error").to_numpy(zero_copy_only=False)
    measured_errors = errors[in_window_sent & ~ok]
    kinds, counts = np.unique(measured_errors.astype(str), return_counts=True) if measured_errors.size else ((), ())
    silence_ms, silence_at_s = longest_silence(end[in_window_done], measure_start_ns, measure_end_ns)
    measured = in_window_sent & ok
    send_ms = span_ms(records, "sent_ns", "written_ns", measured)
    return TrialCounts(
        requests=int(in_window_sent.sum()),
        ok=int((in_window_sent & ok).sum()),
        failed=int((in_window_sent & ~ok).sum()),
        duration_s=window_s,
        throughput_rps=float((in_window_done & ok).sum() / window_s),
        failures_per_s=float((in_window_done & ~ok).sum() / window_s),
        latency_ms=latency_summary(latency_ms[in_window_sent & ok]),
        errors={str(k): int(c) for k, c in zip(kinds, counts)},
        longest_silence_ms=silence_ms,
        longest_silence_at_s=silence_at_s,
        client_send_ms=latency_summary(_known(send_ms)),
        client_receive_ms=latency_summary(_known(span_ms(records, "first_byte_ns", "end_ns", measured))),
        client_send_early_late_ms=early_late_means(send_ms, sent[measured], measure_start_ns, measure_end_ns),
        client_lag_ms=latency_summary(_known(span_ms(records, "end_ns", "read_ns", measured))),
    )


def span_ms(records: pa.Table, start: str, end: str, rows: np.ndarray) -> np.ndarray:
    """end - start of the chosen rows in ms; NaN where the engine could not take either time."""
    begun = records.column(start).to_numpy(zero_copy_only=False).astype(float)[rows]
    ended = records.column(end).to_numpy(zero_copy_only=False).astype(float)[rows]
    return (ended - begun) / 1e6


def _known(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def early_late_means(values: np.ndarray, sent: np.ndarray, start_ns: int, end_ns: int) -> tuple[float, float] | None:
    """Mean of the known values over the window's first third and its last third (by send time)."""
    third = (end_ns - start_ns) / 3
    known = ~np.isnan(values)
    early = values[known & (sent < start_ns + third)]
    late = values[known & (sent >= end_ns - third)]
    return (float(early.mean()), float(late.mean())) if early.size and late.size else None


def longest_silence(answered_ns: np.ndarray, start_ns: int, end_ns: int) -> tuple[float, float]:
    """(ms, seconds into the window) of the longest span in the window without any answer, edges included:
    a server that pauses (a stopped process, a long GC) shows here even when few requests see it."""
    edges = np.concatenate(([start_ns], np.sort(answered_ns), [end_ns]))
    gaps = np.diff(edges)
    longest = int(np.argmax(gaps))
    return float(gaps[longest] / 1e6), float((edges[longest] - start_ns) / 1e9)


def estimate(values: list[float]) -> Estimate:
    """Mean with a two-sided 95% t interval; no interval from a single value.

    Every quantity estimated here (rates, latencies) is non-negative, so the interval is cut at 0."""
    n = len(values)
    if n == 0:
        return Estimate(mean=None, ci95_low=None, ci95_high=None, n=0)
    mean = float(np.mean(values))
    if n < 2:
        return Estimate(mean=mean, ci95_low=None, ci95_high=None, n=n)
    sem = float(np.std(values, ddof=1)) / math.sqrt(n)
    half = float(scipy_stats.t.ppf(0.975, n - 1)) * sem
    return Estimate(mean=mean, ci95_low=max(0.0, mean - half), ci95_high=mean + half, n=n)


LATENCY_STATS = ("mean", "p50", "p90", "p95", "p99")


def aggregate_cell(cell: CellSummary) -> CellSummary:
    """Fill a cell's across-repetition estimates from its trials that measured the server (a trial in which
    it died or never answered is kept in `repetitions` as evidence, never averaged in)."""
    trials = [t for t in cell.repetitions if t.measured]
    with_latency = [t.latency_ms for t in trials if t.latency_ms is not None]
    latency = {s: estimate([getattr(lat, s) for lat in with_latency]) for s in LATENCY_STATS} if with_latency else {}
    return cell.model_copy(update={
        "requests": sum(t.requests for t in cell.repetitions),
        "failed": sum(t.failed for t in cell.repetitions),
        "throughput_rps": estimate([t.throughput_rps for t in trials]),
        "failures_per_s": estimate([t.failures_per_s for t in trials]),
        "latency_ms": {s: e.mean for s, e in latency.items()},
        "latency_ms_ci95": latency,
        "warnings": cell_warnings(cell),
        "cost": request_cost(trials) if trials else None,
    })
