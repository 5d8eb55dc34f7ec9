"""Tables of the MLPerf LoadGen scenarios: per model, each framework's scenarios as LoadGen measured them,
its Server-scenario rate sweep, and the capacity under the latency bound per model and framework."""
from __future__ import annotations

from servingbench.results.schema import CellSummary, Summary
from servingbench.results.tables import NOT_MEASURED, Table, unsupported_notes

LOADGEN_HEADER = ["Framework", "Scenario", "Throughput (samples/s)", "Mean ms", "p50 ms", "p90 ms", "p99 ms",
                  "Send delay p99 ms", "Failed", "LoadGen verdict"]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _verdicts(cell: CellSummary) -> str:
    valid = sum(1 for t in cell.repetitions if t.loadgen and t.loadgen.valid)
    return f"VALID {valid}/{len(cell.repetitions)}" if cell.repetitions else ""


def _send_delay_p99(cell: CellSummary) -> float | None:
    delays = [t.send_delay_ms.p99 for t in cell.repetitions if t.send_delay_ms]
    return max(delays) if delays else None


def _scenario_row(cell: CellSummary) -> list[str]:
    if cell.status in NOT_MEASURED:
        return [cell.framework, cell.level, cell.status] + [""] * (len(LOADGEN_HEADER) - 3)
    throughput = cell.throughput_rps.mean if cell.throughput_rps else None
    latency = cell.latency_ms
    return [cell.framework, cell.level, _fmt(throughput), _fmt(latency.get("mean")), _fmt(latency.get("p50")),
            _fmt(latency.get("p90")), _fmt(latency.get("p99")), _fmt(_send_delay_p99(cell)), str(cell.failed),
            _verdicts(cell)]


def bounded_latency_ms(cell: CellSummary) -> float | None:
    """The latency at the bounded percentile as LoadGen measured it, mean across repetitions."""
    found = [t.loadgen.bounded_latency_ms for t in cell.repetitions
             if t.loadgen and t.loadgen.bounded_latency_ms is not None]
    return sum(found) / len(found) if found else None


def sweeps(summary: Summary) -> dict[str, list[CellSummary]]:
    """Per model whose Server scenario ran at more than one rate: its Server cells, by framework then rate."""
    found: dict[str, list[CellSummary]] = {}
    for cell in summary.cells:
        if cell.scenario == "server" and cell.target_qps:
            found.setdefault(cell.model, []).append(cell)
    frameworks = list(dict.fromkeys(c.framework for c in summary.cells))
    return {model: sorted(cells, key=lambda c: (frameworks.index(c.framework), c.target_qps or 0))
            for model, cells in found.items() if len({c.target_qps for c in cells}) > 1}


def _sweep_table(model: str, cells: list[CellSummary]) -> Table:
    percentile = next((f"p{c.latency_percentile:g}" for c in cells if c.latency_percentile), "bounded percentile")
    rows = []
    for cell in cells:
        if cell.status in NOT_MEASURED:
            rows.append([cell.framework, f"{cell.target_qps:g}", cell.status, "", "", "", ""])
            continue
        rows.append([cell.framework, f"{cell.target_qps:g}", _fmt(cell.throughput_rps.mean if cell.throughput_rps
                                                                  else None),
                     _fmt(cell.latency_ms.get("p50")), _fmt(bounded_latency_ms(cell)), _fmt(cell.latency_bound_ms),
                     _verdicts(cell)])
    return Table(f"{model}-server-sweep", f"LoadGen Server scenario of the {model} model at each offered rate "
                 "(Poisson arrivals; means across repetitions)",
                 ["Framework", "Offered (queries/s)", "Achieved (samples/s)", "p50 ms", f"{percentile} ms",
                  "Bound ms", "LoadGen verdict"], rows)


def _loadgen_cells(summary: Summary) -> list[CellSummary]:
    return [c for c in summary.cells if c.scenario not in ("closed", "capacity")]


def scenario_tables(summary: Summary) -> list[Table]:
    """One table per model with LoadGen scenario cells; values are means across repetitions."""
    tables = []
    cells = _loadgen_cells(summary)
    for model in dict.fromkeys(c.model for c in cells):
        rows = [_scenario_row(c) for c in cells if c.model == model]
        tables.append(Table(f"{model}-loadgen", f"MLPerf LoadGen scenarios of the {model} model (latency from "
                            "LoadGen's schedule, means across repetitions)", LOADGEN_HEADER, rows,
                            notes=unsupported_notes(summary, model)))
    tables += [_sweep_table(model, cells) for model, cells in sweeps(summary).items()]
    capacity = [c for c in summary.cells if c.scenario == "capacity"]
    if capacity:
        frameworks = list(dict.fromkeys(c.framework for c in capacity))
        by_key = {(c.model, c.framework): c for c in capacity}
        rows = []
        for model in dict.fromkeys(c.model for c in capacity):
            row = [model]
            for fw in frameworks:
                cell = by_key.get((model, fw))
                row.append("" if cell is None else _capacity_text(cell))
            rows.append(row)
        bounds = sorted({c.capacity.bound for c in capacity if c.capacity})
        tables.append(Table("capacity", f"Capacity: the highest Server-scenario rate LoadGen calls VALID at "
                            f"{' / '.join(bounds) or 'the latency bound'} (queries per second)",
                            ["Model"] + frameworks, rows))
    return tables


def _capacity_text(cell: CellSummary) -> str:
    if cell.status in NOT_MEASURED or cell.capacity is None:
        return cell.status
    found = cell.capacity
    if found.max_qps is None:
        return "none valid"
    upper = f" (< {found.upper_qps:.1f})" if found.upper_qps else ""
    return f"{found.max_qps:.1f}{upper}"
