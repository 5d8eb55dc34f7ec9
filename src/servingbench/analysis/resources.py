"""Per-trial resource figures: mean and max of the samples taken inside the measurement window."""
from __future__ import annotations

from servingbench.monitor.resources import COLUMNS
from servingbench.results.schema import Stat, TrialResources


def summarize_resources(rows: list[tuple], start_ns: int, end_ns: int, interval_s: float) -> TrialResources:
    inside = [r for r in rows if start_ns <= r[0] <= end_ns]
    stats = {}
    for i, name in enumerate(COLUMNS[1:], start=1):
        values = [r[i] for r in inside if r[i] is not None]
        stats[name] = Stat(mean=sum(values) / len(values), max=max(values)) if values else None
    return TrialResources(interval_s=interval_s, samples=len(inside), **stats)
