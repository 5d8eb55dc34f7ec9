"""Actionable warnings: what makes a measurement doubtful, and what to do about it."""
from __future__ import annotations

import statistics

from servingbench.results.schema import CellSummary, Stability, TrialCounts

LOAD_CPU_BOUND_PERCENT = 90.0
# A span without answers this many times the trial's p99 (and at least STALL_MIN_MS) is a stall.
STALL_FACTOR = 10.0
STALL_MIN_MS = 1000.0
# Writing a request taking this many times longer at the window's end than at its start (and at least
# SEND_GROWTH_MIN_MS) means the writes queue up behind something other than the server's answers.
SEND_GROWTH_FACTOR = 2.0
SEND_GROWTH_MIN_MS = 1.0
# Answers that waited this long (and this share of the latency) for the load generator to read them.
LAG_MIN_MS = 0.5
LAG_SHARE = 0.10
HIGH_VARIATION = 0.10  # coefficient of variation of throughput across repetitions


def trial_warnings(counts: TrialCounts, load_cpu_percent: float, stability: Stability | None = None) -> list[str]:
    found = []
    if stability and not stability.stable:
        found.append(f"never stabilised: {stability.windows} windows of {stability.window_s:g} s without "
                     f"{stability.windows_agreeing} in a row within {stability.tolerance_pct:g}% (throughput and "
                     "p50); raise max_duration_s or stability_tolerance_pct, or quiet the host")
    if load_cpu_percent >= LOAD_CPU_BOUND_PERCENT:
        found.append(f"load generator used {load_cpu_percent:.0f}% of a core: throughput may be its limit, "
                     "not the server's; spread it over more processes (--load-workers N or auto), run fewer "
                     "users, or run it on another host (servingbench worker --master)")
    for problem in (send_growth_warning(counts), lag_warning(counts)):
        if problem:
            found.append(problem)
    if counts.failed and counts.ok:  # none answered at all: not_a_measurement() says so, as the cell's reason
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.errors.items(), key=lambda e: -e[1]))
        found.append(f"{counts.failed} of {counts.requests} requests failed" + (f" ({kinds})" if kinds else ""))
    stall = stall_warning(counts)
    if stall:
        found.append(stall)
    if counts.ok and counts.ok < 10:
        found.append(f"only {counts.ok} successful requests in the window: lengthen duration_s for stable figures")
    return found


def send_growth_warning(counts: TrialCounts) -> str | None:
    """The client took ever longer to write its requests: it, or the network, not the server, set the pace."""
    if counts.client_send_early_late_ms is None:
        return None
    early, late = counts.client_send_early_late_ms
    if late < SEND_GROWTH_MIN_MS or late < SEND_GROWTH_FACTOR * early:
        return None
    return (f"client send time grew from {early:.2f} ms to {late:.2f} ms over the window: the load generator or the "
            "network is falling behind (a server that stops reading shows the same); check the host's load and "
            "the server's receive queue")


def lag_warning(counts: TrialCounts) -> str | None:
    """Answers waited for the load generator: in a closed loop that wait delays each user's next request."""
    if counts.client_lag_ms is None or counts.latency_ms is None:
        return None
    lag = counts.client_lag_ms.mean
    if lag < max(LAG_MIN_MS, LAG_SHARE * counts.latency_ms.mean):
        return None
    return (f"the load generator got to answers {lag:.2f} ms after they arrived (mean; latency {counts.latency_ms.mean:.2f}"
            " ms): each user's next request waited that long, so throughput is partly the generator's limit; run "
            "fewer users per load process or the generator on another host")


def stall_warning(counts: TrialCounts) -> str | None:
    if counts.latency_ms is None or counts.longest_silence_ms is None or counts.longest_silence_at_s is None:
        return None
    if counts.longest_silence_ms < max(STALL_FACTOR * counts.latency_ms.p99, STALL_MIN_MS):
        return None
    return (f"stall: no answer for {counts.longest_silence_ms / 1000:.1f} s from {counts.longest_silence_at_s:.1f} s "
            f"into the window (p99 is {counts.latency_ms.p99:.1f} ms): the server or the host paused")


def not_a_measurement(counts: TrialCounts) -> str | None:
    """Why a trial measured nothing of the server, or None: no request sent, or none answered successfully."""
    if counts.requests == 0:
        return "no request was sent in the measurement window"
    if counts.ok == 0:
        top = max(counts.errors, key=lambda kind: counts.errors[kind]) if counts.errors else "unknown error"
        return f"all {counts.requests} requests failed: {top}"
    return None


def cell_warnings(cell: CellSummary) -> list[str]:
    rates = [t.throughput_rps for t in cell.repetitions if t.measured]
    if len(rates) >= 2 and statistics.fmean(rates) > 0:
        variation = statistics.stdev(rates) / statistics.fmean(rates)
        if variation > HIGH_VARIATION:
            return [f"throughput varies {variation:.0%} across repetitions: the host may be busy; "
                    "add repetitions or lengthen duration_s"]
    return []
