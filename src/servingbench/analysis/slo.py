"""SLO gates: thresholds a cell's results must meet, e.g. `p99_ms<=200`, `throughput_rps>=50` or
`loadgen=valid`. A gate reads one number from a CellSummary; a cell that does not measure it (a LoadGen
verdict on a closed-loop cell) gets no verdict rather than a breach."""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict

from servingbench.errors import ServingbenchError
from servingbench.results.schema import CellSummary, GateVerdict, Summary


@dataclass(frozen=True)
class GateMetric:
    read: Callable[[CellSummary], float | None]
    not_measured: str  # the verdict's reason where `read` finds no value


def _latency(stat: str) -> GateMetric:
    return GateMetric(lambda c: c.latency_ms.get(stat), "no latency measured")


def _error_rate(cell: CellSummary) -> float | None:
    return cell.failed / cell.requests if cell.requests else None


def _capacity_qps(cell: CellSummary) -> float | None:
    if cell.capacity is None:
        return None
    # No rate tried was VALID: the cell sustains none, which fails any positive threshold.
    return cell.capacity.max_qps or 0.0


def _valid_share(cell: CellSummary) -> float | None:
    """The share of the cell's LoadGen trials LoadGen called VALID (1.0: all of them)."""
    if cell.capacity:  # the search probes rates above the capacity on purpose: those are INVALID by design
        return None
    verdicts = [t.loadgen.valid for t in cell.repetitions if t.loadgen]
    return sum(verdicts) / len(verdicts) if verdicts else None


GATE_METRICS = {
    **{f"{stat}_ms": _latency(stat) for stat in ("mean", "p50", "p90", "p95", "p99")},
    "throughput_rps": GateMetric(lambda c: c.throughput_rps.mean if c.throughput_rps else None,
                                 "no throughput measured"),
    "failures_per_s": GateMetric(lambda c: c.failures_per_s.mean if c.failures_per_s else None,
                                 "no failure rate measured"),
    "error_rate": GateMetric(_error_rate, "no requests measured"),
    "capacity_qps": GateMetric(_capacity_qps, "not a capacity search"),
    "loadgen": GateMetric(_valid_share, "not a fixed-rate LoadGen scenario"),
}
OPERATORS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
LOADGEN_VALID = "loadgen=valid"
# "=" is accepted as "==" so that the documented `loadgen=valid` reads naturally.
_EXPRESSION = re.compile(r"\s*([A-Za-z_]\w*)\s*(<=|>=|==|<|>|=)\s*(\S+)\s*")


class Gate(BaseModel):
    model_config = ConfigDict(frozen=True)

    metric: str
    op: Literal["<=", "<", ">=", ">", "=="]
    threshold: float
    text: str

    def check(self, cell: CellSummary) -> GateVerdict:
        metric = GATE_METRICS[self.metric]
        observed = metric.read(cell)
        if observed is None:
            return GateVerdict(gate=self.text, observed=None, passed=None, reason=metric.not_measured)
        return GateVerdict(gate=self.text, observed=observed, passed=OPERATORS[self.op](observed, self.threshold))


def _bad_gate(text: str, problem: str) -> ServingbenchError:
    return ServingbenchError(f"bad SLO gate '{text}': {problem}; metrics: {', '.join(GATE_METRICS)}; "
                             f"operators: {', '.join(OPERATORS)}; e.g. p99_ms<=200 or {LOADGEN_VALID}")


def _threshold(text: str, metric: str, op: str, value: str) -> float:
    if metric == "loadgen":
        if op != "==" or value.lower() != "valid":
            raise _bad_gate(text, f"loadgen takes only {LOADGEN_VALID}")
        return 1.0  # every trial VALID
    try:
        number = float(value)
    except ValueError:
        raise _bad_gate(text, f"threshold '{value}' is not a number") from None
    if not math.isfinite(number):
        raise _bad_gate(text, f"threshold '{value}' is not a finite number")
    return number


def parse_gate(text: str) -> Gate:
    """`METRIC OP THRESHOLD`, e.g. "p99_ms<=200"; a ServingbenchError naming the expression otherwise."""
    text = " ".join(text.split())  # one line in any message, whatever the YAML held
    found = _EXPRESSION.fullmatch(text)
    if not found:
        raise _bad_gate(text, "expected METRIC OPERATOR THRESHOLD")
    metric, op, value = found.groups()
    if metric not in GATE_METRICS:
        raise _bad_gate(text, f"unknown metric '{metric}'")
    op = "==" if op == "=" else op
    return Gate.model_validate({"metric": metric, "op": op, "threshold": _threshold(text, metric, op, value),
                                "text": text})


def parse_gates(texts: list[str]) -> list[Gate]:
    return [parse_gate(text) for text in texts]


def apply_gates(summary: Summary, gates: list[Gate]) -> Summary:
    """A copy whose 'ok' cells hold one verdict per gate; cells not measured hold none."""
    cells = [cell.model_copy(update={"slo": [g.check(cell) for g in gates] if cell.status == "ok" else []})
             for cell in summary.cells]
    return summary.model_copy(update={"cells": cells})


def observed_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def breaches(summary: Summary) -> list[str]:
    """One line per gate a cell failed, e.g. "torchserve / resnet50 / 10 users: p99_ms<=200 breached: 250.3"."""
    return [f"{cell.label}: {verdict.gate} breached: {observed_text(verdict.observed)}"
            for cell in summary.cells for verdict in cell.slo if verdict.passed is False]
