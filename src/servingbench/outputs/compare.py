"""Two results folders side by side: how throughput and p50/p99 latency changed per cell, whether the
change is larger than the run-to-run noise (the 95% CIs do not overlap) and whether it is a regression:
beyond the noise and worse, in the metric's bad direction, by more than a threshold."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from rich.table import Table

from servingbench.outputs.findings import ci_overlap
from servingbench.pipeline import served_label
from servingbench.results.schema import CellSummary, Summary
from servingbench.results.tables import METRICS, NOT_MEASURED, Metric

COMPARED = [m for m in METRICS if m.key in ("throughput", "latency_p50", "latency_p99")]

# CellSummary.key: framework, model, pipeline, scenario, users, server rate
CellKey = tuple[str, str, str, str, int, float | None]
CELL_FIELDS = ("framework", "model", "pipeline", "scenario", "users", "target_qps")
CHANGE_FIELDS = (*CELL_FIELDS, "metric", "before", "after", "change", "percent", "significant", "regression")


@dataclass(frozen=True)
class Change:
    cell: CellKey
    metric: str
    before: float
    after: float
    significant: bool | None  # the CIs do not overlap; None without CIs (one repetition)
    lower_is_better: bool

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def percent(self) -> float | None:
        return None if self.before == 0 else 100 * self.delta / self.before

    @property
    def worse_percent(self) -> float | None:
        """The change in the metric's bad direction, % of the value before (negative: an improvement)."""
        if self.percent is None:
            return None
        return self.percent if self.lower_is_better else -self.percent

    def regressed(self, threshold_pct: float) -> bool:
        """Beyond run-to-run noise and worse by more than `threshold_pct` percent."""
        worse = self.worse_percent
        return self.significant is True and worse is not None and worse > threshold_pct


@dataclass(frozen=True)
class Comparison:
    changes: list[Change]
    only_before: list[CellKey]
    only_after: list[CellKey]
    not_measured: list[CellKey]  # in both, but unsupported or failed in at least one

    def regressions(self, threshold_pct: float) -> list[Change]:
        return [c for c in self.changes if c.regressed(threshold_pct)]


def _cells(summary: Summary) -> dict[CellKey, CellSummary]:
    return {c.key: c for c in summary.cells}


def _measured(cell: CellSummary) -> bool:
    return cell.status not in NOT_MEASURED and bool(cell.repetitions)


def _change(key: CellKey, metric: Metric, before: CellSummary, after: CellSummary) -> Change | None:
    a, b = metric.value(before), metric.value(after)
    if a is None or b is None:
        return None
    overlap = ci_overlap(metric.estimate(before), metric.estimate(after))
    return Change(key, metric.key, a, b, None if overlap is None else not overlap, metric.lower_is_better)


def compare(before: Summary, after: Summary) -> Comparison:
    old, new = _cells(before), _cells(after)
    changes, not_measured = [], []
    for key in (k for k in old if k in new):
        if not (_measured(old[key]) and _measured(new[key])):
            not_measured.append(key)
            continue
        changes += [c for metric in COMPARED if (c := _change(key, metric, old[key], new[key]))]
    return Comparison(changes, [k for k in old if k not in new], [k for k in new if k not in old], not_measured)


def _cell_columns(key: CellKey) -> list[str]:
    """framework (its pipeline said where not the default), model, scenario, users, and the rate where a server
    cell has one."""
    framework, model, pipeline, scenario, users, rate = key
    return [served_label(framework, pipeline), model, scenario, str(users), "" if rate is None else f"{rate:g} qps"]


def _cell_text(key: CellKey) -> str:
    """E.g. "reference / resnet50 / server / 1 / 20 qps"."""
    return " / ".join(c for c in _cell_columns(key) if c)


def regression_line(change: Change) -> str:
    """E.g. "reference / resnet50 / closed / 10: throughput 40.00 → 30.00 (-25.0%)"."""
    return (f"{_cell_text(change.cell)}: {change.metric} {change.before:.2f} → {change.after:.2f} "
            f"({change.percent:+.1f}%)")


def unmatched_lines(comparison: Comparison) -> list[str]:
    """The cells without a change to show, one line per reason."""
    groups = (("only in A", comparison.only_before), ("only in B", comparison.only_after),
              ("unsupported or failed on a side", comparison.not_measured))
    return [f"{label}: " + "; ".join(map(_cell_text, keys)) for label, keys in groups if keys]


def comparison_table(comparison: Comparison, title: str, threshold_pct: float | None) -> Table:
    caption = "! the 95% CIs do not overlap: a change beyond run-to-run noise"
    if threshold_pct is not None:
        caption += f"; regression: beyond the noise and worse by more than {threshold_pct:g}%"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for column in ("framework", "model", "scenario", "users", "rate", "metric"):
        table.add_column(column)
    for column in ("A", "B", "change", "%", ""):
        table.add_column(column, justify="right")
    for change in comparison.changes:
        percent = "-" if change.percent is None else f"{change.percent:+.1f}%"
        flag = {True: "[bold yellow]![/]", False: "", None: "no CI"}[change.significant]
        if threshold_pct is not None and change.regressed(threshold_pct):
            flag += " [bold red]regression[/]"
        table.add_row(*_cell_columns(change.cell), change.metric, f"{change.before:.2f}", f"{change.after:.2f}",
                      f"{change.delta:+.2f}", percent, flag)
    return table


def _change_record(change: Change, threshold_pct: float | None) -> dict:
    """One change as plain values; `regression` is None when no threshold was given."""
    return {**dict(zip(CELL_FIELDS, change.cell)), "metric": change.metric, "before": change.before,
            "after": change.after, "change": change.delta, "percent": change.percent,
            "significant": change.significant,
            "regression": None if threshold_pct is None else change.regressed(threshold_pct)}


def comparison_json(comparison: Comparison, threshold_pct: float | None) -> str:
    def cells(keys: list[CellKey]) -> list[dict]:
        return [dict(zip(CELL_FIELDS, key)) for key in keys]

    document = {"fail_on_regression_pct": threshold_pct,
                "changes": [_change_record(c, threshold_pct) for c in comparison.changes],
                "only_in_a": cells(comparison.only_before), "only_in_b": cells(comparison.only_after),
                "not_measured": cells(comparison.not_measured)}
    return json.dumps(document, indent=2) + "\n"


def comparison_csv(comparison: Comparison, threshold_pct: float | None) -> str:
    """One row per change; empty fields where a value is None."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CHANGE_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_change_record(c, threshold_pct) for c in comparison.changes)
    return out.getvalue()
