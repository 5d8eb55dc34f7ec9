"""Actionable warnings: what makes a measurement doubtful, and what to do about it."""
from __future__ import annotations

import statistics

from servingbench.results.schema import CellSummary, Stability, TrialCounts

LOAD_CPU_BOUND_PERCENT = 90.0
HIGH_VARIATION = 0.10  # coefficient of variation of throughput across repetitions


def trial_warnings(counts: TrialCounts, load_cpu_percent: float, stability: Stability | None = None) -> list[str]:
    found = []
    if stability and not stability.stable:
        found.append(f"never stabilised: {stability.windows} windows of {stability.window_s:g} s without "
                     f"{stability.windows_agreeing} in a row within {stability.tolerance_pct:g}% (throughput and "
                     "p50); raise max_duration_s or stability_tolerance_pct, or quiet the host")
    if load_cpu_percent >= LOAD_CPU_BOUND_PERCENT:
        found.append(f"load generator used {load_cpu_percent:.0f}% of a core: throughput may be its limit, "
                     "not the server's; run fewer users or the generator on another host")
    if counts.requests and counts.ok == 0:
        top = max(counts.errors, key=counts.errors.get) if counts.errors else "unknown"
        found.append(f"no request succeeded (most common error: {top})")
    elif counts.failed:
        found.append(f"{counts.failed} of {counts.requests} requests failed")
    if counts.ok and counts.ok < 10:
        found.append(f"only {counts.ok} successful requests in the window: lengthen duration_s for stable figures")
    return found


def cell_warnings(cell: CellSummary) -> list[str]:
    rates = [t.throughput_rps for t in cell.repetitions]
    if len(rates) >= 2 and statistics.fmean(rates) > 0:
        variation = statistics.stdev(rates) / statistics.fmean(rates)
        if variation > HIGH_VARIATION:
            return [f"throughput varies {variation:.0%} across repetitions: the host may be busy; "
                    "add repetitions or lengthen duration_s"]
    return []
