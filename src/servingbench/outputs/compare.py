"""Two results folders side by side: how throughput and p50/p99 latency changed per cell, and
whether the change is larger than the run-to-run noise (the 95% CIs do not overlap)."""
from __future__ import annotations

from dataclasses import dataclass

from servingbench.outputs.findings import ci_overlap
from servingbench.results.schema import CellSummary, Summary
from servingbench.results.tables import METRICS, NOT_MEASURED

COMPARED = [m for m in METRICS if m.key in ("throughput", "latency_p50", "latency_p99")]

CellKey = tuple[str, str, str, int]  # framework, model, scenario, users


@dataclass(frozen=True)
class Change:
    cell: CellKey
    metric: str
    before: float
    after: float
    significant: bool | None  # the CIs do not overlap; None without CIs (one repetition)

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def percent(self) -> float | None:
        return None if self.before == 0 else 100 * self.delta / self.before


@dataclass(frozen=True)
class Comparison:
    changes: list[Change]
    only_before: list[CellKey]
    only_after: list[CellKey]
    not_measured: list[CellKey]  # in both, but unsupported or failed in at least one


def _cells(summary: Summary) -> dict[CellKey, CellSummary]:
    return {(c.framework, c.model, c.scenario, c.users): c for c in summary.cells}


def _measured(cell: CellSummary) -> bool:
    return cell.status not in NOT_MEASURED and bool(cell.repetitions)


def compare(before: Summary, after: Summary) -> Comparison:
    old, new = _cells(before), _cells(after)
    changes, not_measured = [], []
    for key in (k for k in old if k in new):
        if not (_measured(old[key]) and _measured(new[key])):
            not_measured.append(key)
            continue
        for metric in COMPARED:
            a, b = metric.value(old[key]), metric.value(new[key])
            if a is not None and b is not None:
                overlap = ci_overlap(metric.estimate(old[key]), metric.estimate(new[key]))
                changes.append(Change(key, metric.key, a, b, None if overlap is None else not overlap))
    return Comparison(changes, [k for k in old if k not in new], [k for k in new if k not in old], not_measured)
