"""The study's figures, per model, as PNG and SVG in DIR/figures/.

Only measured cells are drawn; unsupported and failed ones are listed in the report instead.
"""
from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from servingbench.analysis.timeseries import TimeBin, TrialSeries
from servingbench.atomic import write_atomically
from servingbench.outputs.breakdown import PARTS, latency_breakdown
from servingbench.outputs.findings import users_label
from servingbench.results.scenario_tables import bounded_latency_ms, sweeps
from servingbench.results.schema import CellSummary, Estimate, ModelInfo, Summary, TrialSummary
from servingbench.results.tables import LATENCY, NOT_MEASURED, THROUGHPUT, Grid, Metric, grids

STYLE = {"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "savefig.dpi": 110, "savefig.bbox": "tight",
         # text stays text in the SVG; a fixed salt keeps re-rendered SVGs byte-identical
         "svg.fonttype": "none", "svg.hashsalt": "servingbench"}
PART_COLORS = dict(zip(PARTS, ("#bab0ac", "#b07aa1", "#f28e2b", "#ff9da7", "#edc948", "#e15759", "#4e79a7",
                               "#76b7b2")))
Palette = dict[str, str]


@dataclass(frozen=True)
class FigureKind:
    key: str
    caption: str
    # closed-loop kinds get (figure, grid, palette, model info); open-loop ones (figure, the model's cells,
    # palette); the time series (figure, cell, its trials with their series). False: nothing to draw.
    draw: Callable[..., bool]


@dataclass(frozen=True)
class RenderedFigure:
    model: str
    kind: FigureKind
    png: Path
    svg: Path
    cell: CellSummary | None = None  # a figure of one cell (its time series)


def _load_levels(grid: Grid) -> list[int]:
    return list(dict.fromkeys([grid.users[0], grid.users[-1]]))


def _series(grid: Grid, fw: str, metric: Metric) -> list[tuple[int, CellSummary]]:
    return [(u, c) for u in grid.users if (c := grid.measured(fw, u)) and metric.value(c) is not None]


def _ci_band(ax: Axes, x: list[float], estimates: list[Estimate | None], color: str) -> None:
    bounds = [(e.ci95_low, e.ci95_high) for e in estimates if e and e.ci95_low is not None]
    if len(bounds) == len(x):
        ax.fill_between(x, [b[0] for b in bounds], [b[1] for b in bounds], color=color, alpha=0.18, linewidth=0)


def _users_axis(ax: Axes, grid: Grid) -> None:
    ax.set_xlabel("concurrent users (closed loop)")
    ax.set_xticks(grid.users)


def _finish(ax: Axes, ylabel: str, title: str, **legend) -> None:
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    if legend or ax.get_legend_handles_labels()[0]:
        ax.legend(**legend)


def _throughput(fig: Figure, grid: Grid, colors: Palette, info: ModelInfo | None) -> bool:
    ax = fig.subplots()
    drawn = False
    for fw in grid.frameworks:
        series = _series(grid, fw, THROUGHPUT)
        if series:
            x = [u for u, _ in series]
            ax.plot(x, [THROUGHPUT.value(c) for _, c in series], marker="o", color=colors[fw], label=fw)
            _ci_band(ax, x, [c.throughput_rps for _, c in series], colors[fw])
            drawn = True
    _users_axis(ax, grid)
    _finish(ax, "requests per second", f"Throughput of {grid.title} (band: 95% CI across repetitions)")
    return drawn


def _latency(fig: Figure, grid: Grid, colors: Palette, info: ModelInfo | None) -> bool:
    ax = fig.subplots()
    handles = []
    for fw in grid.frameworks:
        series = _series(grid, fw, LATENCY)
        if not series:
            continue
        x = [u for u, _ in series]
        ax.plot(x, [c.latency_ms["mean"] for _, c in series], marker="o", color=colors[fw])
        _ci_band(ax, x, [c.latency_ms_ci95.get("mean") for _, c in series], colors[fw])
        for key, style in (("p50", "--"), ("p99", ":")):
            points = [(u, c.latency_ms[key]) for u, c in series if key in c.latency_ms]
            ax.plot([p[0] for p in points], [p[1] for p in points], linestyle=style, color=colors[fw], linewidth=1)
        handles.append(Line2D([], [], color=colors[fw], marker="o", label=fw))
    handles += [Line2D([], [], color="black", linestyle=s, label=label)
                for s, label in (("-", "mean (band: 95% CI)"), ("--", "p50"), (":", "p99"))]
    _users_axis(ax, grid)
    _finish(ax, "latency (ms)", f"Latency of {grid.title}", handles=handles, fontsize=8)
    return len(handles) > 3


def _latency_bars(fig: Figure, grid: Grid, colors: Palette, info: ModelInfo | None) -> bool:
    levels = _load_levels(grid)
    drawn = False
    for ax, users in zip(fig.subplots(1, len(levels), squeeze=False)[0], levels):
        measured = [(fw, c) for fw in grid.frameworks if (c := grid.measured(fw, users)) and LATENCY.value(c)]
        means = [LATENCY.value(c) for _, c in measured]
        per_trial = [[t.latency_ms.mean for t in c.repetitions if t.latency_ms] or [m]
                     for (_, c), m in zip(measured, means)]
        ax.bar([f"{fw}\n{m:.1f} ms" for (fw, _), m in zip(measured, means)], means, capsize=4,
               yerr=[[m - min(t) for m, t in zip(means, per_trial)], [max(t) - m for m, t in zip(means, per_trial)]],
               color=[colors[fw] for fw, _ in measured])
        ax.set_title(users_label(users))
        ax.set_ylabel("mean latency (ms)")
        drawn = drawn or bool(measured)
    fig.suptitle(f"Latency of {grid.title} (whiskers: min–max across repetitions)")
    return drawn


def _latency_throughput(fig: Figure, grid: Grid, colors: Palette, info: ModelInfo | None) -> bool:
    ax = fig.subplots()
    drawn = False
    for fw in grid.frameworks:
        series = [(u, c) for u, c in _series(grid, fw, LATENCY) if THROUGHPUT.value(c) is not None]
        if not series:
            continue
        x = [THROUGHPUT.value(c) for _, c in series]
        y = [c.latency_ms["mean"] for _, c in series]
        ax.plot(x, y, marker="o", color=colors[fw], label=fw)
        for (users, _), xi, yi in zip(series, x, y):
            ax.annotate(str(users), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        drawn = True
    ax.set_xlabel("throughput (requests per second)")
    _finish(ax, "mean latency (ms)", f"Latency against throughput, {grid.title} (labels: users)")
    return drawn


def _breakdown(fig: Figure, grid: Grid, colors: Palette, info: ModelInfo | None) -> bool:
    levels = _load_levels(grid)
    floor = info.inprocess_latency_ms.mean if info and info.inprocess_latency_ms else None
    fig.set_size_inches(7.0, 1.4 + len(levels) * (0.7 + 0.4 * len(grid.frameworks)))
    used = set()
    for ax, users in zip(fig.subplots(len(levels), 1, squeeze=False)[:, 0], levels):
        rows = [(fw, parts) for fw in grid.frameworks
                if (cell := grid.measured(fw, users)) and (parts := latency_breakdown(cell))]
        for y, (_fw, parts) in enumerate(rows):
            ax.barh([y] * len(parts), list(parts.values()), left=_starts(list(parts.values())),
                    color=[PART_COLORS[name] for name in parts], height=0.6)
            used.update(parts)
        ax.set_yticks(range(len(rows)), [fw for fw, _ in rows])
        ax.invert_yaxis()
        if floor is not None and rows:
            ax.axvline(floor, color="black", linestyle="--", linewidth=1)
        ax.set_title(users_label(users))
        ax.set_xlabel("ms per request")
    handles = [Line2D([], [], color=c, linewidth=8, label=n) for n, c in PART_COLORS.items() if n in used]
    if floor is not None:
        handles.append(Line2D([], [], color="black", linestyle="--", label="model in-process (mean)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle(f"Where the time goes, {grid.title}")
    return bool(used)


def _starts(widths: list[float]) -> list[float]:
    """Left edges of stacked bars."""
    return [sum(widths[:i]) for i in range(len(widths))]


BREAKDOWN = FigureKind("breakdown", "Where a request's time goes: client preprocessing (before timing), the "
                                    "client writing the request, network + the framework's HTTP layers, server "
                                    "queue and inference (server counters), the client reading the answer; "
                                    "averaged over repetitions. The dashed line is the model alone, in-process.",
                       _breakdown)
KINDS = (
    FigureKind("throughput", "Throughput against concurrent users; the band is the 95% CI across repetitions.",
               _throughput),
    FigureKind("latency", "Latency against concurrent users: mean (band: 95% CI), p50 dashed, p99 dotted.", _latency),
    FigureKind("latency-bars", "Mean latency at the lowest and the highest load; whiskers span the fastest and "
                               "slowest repetition (the study's Figures 1 and 5).", _latency_bars),
    FigureKind("latency-throughput", "Latency against throughput as load grows; point labels are user counts.",
               _latency_throughput),
    BREAKDOWN,
)
SIZES = {"latency-bars": (8.0, 3.4)}


def _rate_curve(ax: Axes, points: list[tuple[float, float, bool]], color: str, label: str) -> None:
    """(rate asked for, latency, LoadGen VALID) points joined by rate: filled VALID, hollow INVALID."""
    points = sorted(points)
    ax.plot([p[0] for p in points], [p[1] for p in points], color=color, alpha=0.5)
    for rate, latency, valid in points:
        ax.plot(rate, latency, marker="o", color=color, markerfacecolor=color if valid else "white")
    ax.plot([], [], color=color, marker="o", label=label)


def _bound(ax: Axes, bound_ms: float | None) -> None:
    if bound_ms is not None:
        ax.axhline(bound_ms, color="black", linestyle="--", linewidth=1, label=f"bound {bound_ms:g} ms")


def _rate_axis(ax: Axes, percentile: float | None) -> None:
    ax.set_xlabel("Server scenario rate asked for (queries/s, Poisson)")
    ax.set_yscale("log")
    ax.set_ylabel(f"p{percentile:g} latency (ms, log)" if percentile else "latency at the bounded percentile (ms, log)")


def _capacity(fig: Figure, cells: list[CellSummary], colors: Palette) -> bool:
    """Each capacity search's probes: latency at the bounded percentile against the rate asked for."""
    searches = [c for c in cells if c.capacity and c.capacity.probes]
    if not searches:
        return False
    ax = fig.subplots()
    for cell in searches:
        found, color = cell.capacity, colors[cell.framework]
        _rate_curve(ax, [(p.target_qps, p.latency_ms, p.valid) for p in found.probes if p.latency_ms is not None],
                    color, f"{cell.framework}: " + (f"{found.max_qps:.1f}/s" if found.max_qps else "none valid"))
        if found.max_qps:
            ax.axvline(found.max_qps, color=color, linestyle=":", linewidth=1)
    bound = searches[0].capacity
    _bound(ax, bound.latency_bound_ms)
    _rate_axis(ax, bound.percentile)
    ax.set_title(f"{searches[0].model}: capacity under the latency bound")
    ax.legend()
    return True


CAPACITY = FigureKind("capacity", "Capacity search: each probe's latency at the bounded percentile against the "
                      "rate asked for; filled = LoadGen VALID, hollow = INVALID; dotted = the highest VALID rate.",
                      _capacity)


def _sweep(fig: Figure, cells: list[CellSummary], colors: Palette) -> bool:
    """The Server scenario at each offered rate: latency (bounded percentile, p50) and achieved throughput."""
    measured = [c for c in cells if c.status not in NOT_MEASURED and c.repetitions and c.target_qps]
    if not measured:
        return False
    latency_ax, throughput_ax = fig.subplots(1, 2)
    for fw in dict.fromkeys(c.framework for c in measured):
        mine = sorted((c for c in measured if c.framework == fw), key=lambda c: c.target_qps or 0)
        color = colors[fw]
        _rate_curve(latency_ax, [(c.target_qps, latency, all(t.loadgen and t.loadgen.valid for t in c.repetitions))
                                 for c in mine if c.target_qps and (latency := bounded_latency_ms(c)) is not None],
                    color, fw)
        p50 = [(c.target_qps, c.latency_ms["p50"]) for c in mine if "p50" in c.latency_ms]
        latency_ax.plot([p[0] for p in p50], [p[1] for p in p50], color=color, linestyle=":", linewidth=1)
        achieved = [(c.target_qps, c.throughput_rps.mean) for c in mine if c.throughput_rps and c.throughput_rps.mean]
        throughput_ax.plot([a[0] for a in achieved], [a[1] for a in achieved], marker="o", color=color, label=fw)
    _bound(latency_ax, next((c.latency_bound_ms for c in measured if c.latency_bound_ms), None))
    latency_ax.plot([], [], color="black", linestyle=":", linewidth=1, label="p50")
    _rate_axis(latency_ax, next((c.latency_percentile for c in measured if c.latency_percentile), None))
    latency_ax.legend(fontsize=8)
    top = max(c.target_qps or 0 for c in measured)
    throughput_ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="achieved = offered")
    throughput_ax.set_xlabel("Server scenario rate asked for (queries/s)")
    _finish(throughput_ax, "achieved (samples/s)", "Throughput", fontsize=8)
    fig.suptitle(f"{measured[0].model}: latency against offered load (LoadGen Server scenario)")
    return True


SWEEP = FigureKind("server-sweep", "Server-scenario rate sweep: latency at the bounded percentile against the rate "
                   "offered (filled = LoadGen VALID in every repetition, hollow = INVALID), p50 dotted, the bound "
                   "dashed; right: the throughput achieved.", _sweep)


def _per_second(series: TrialSeries) -> list[TimeBin]:
    """One bin per second: the answers and failures of both phases summed (the second the measurement began
    has a row of each), the latency of the phase most of them belonged to."""
    seconds: dict[int, list[TimeBin]] = {}
    for row in series.bins:
        seconds.setdefault(row.second, []).append(row)
    return [dataclasses.replace(max(rows, key=lambda r: r.requests), requests=sum(r.requests for r in rows),
                                ok=sum(r.ok for r in rows), failed=sum(r.failed for r in rows),
                                throughput_rps=sum(r.throughput_rps for r in rows))
            for rows in seconds.values()]


def _timeseries(fig: Figure, cell: CellSummary, trials: list[tuple[TrialSummary, TrialSeries]]) -> bool:
    if not any(series.bins for _, series in trials):
        return False
    with_cpu = any(b.server_cpu_percent is not None for _, series in trials for b in series.bins)
    axes = fig.subplots(3 if with_cpu else 2, 1, sharex=True, squeeze=False)[:, 0]
    cycle = matplotlib.colormaps["tab10"].colors
    failures_shown = False
    for i, (trial, series) in enumerate(trials):
        color = cycle[i % len(cycle)]
        bins = _per_second(series)
        x = [b.second + 0.5 for b in bins]
        # The last second is cut short by the trial's end; its rate is of the answers still in flight, not of the load.
        whole = [(xi, b.throughput_rps) for xi, b in zip(x, bins) if b.covered_s >= 1]
        axes[0].plot([w[0] for w in whole], [w[1] for w in whole], color=color, marker=".",
                     label=f"rep {trial.repetition}" + (f" ({trial.target_qps:.3g}/s)" if trial.target_qps else ""))
        failed = [(xi, b.failed) for xi, b in zip(x, bins) if b.failed]
        if failed:
            axes[0].plot([f[0] for f in failed], [f[1] for f in failed], "x", color="#d62728",
                         label=None if failures_shown else "failures/s")
            failures_shown = True
        for key, style in (("p50_ms", "-"), ("p99_ms", "--")):
            axes[1].plot(x, [_nan(getattr(b, key)) for b in bins], color=color, linestyle=style, marker=".")
        if with_cpu:
            cpu = [(xi, b.server_cpu_percent) for xi, b in zip(x, bins) if b.server_cpu_percent is not None]
            axes[2].plot([c[0] for c in cpu], [c[1] for c in cpu], color=color, marker=".")
        if series.warmup_end_s > 0:
            for ax in axes:
                ax.axvspan(0, series.warmup_end_s, color="grey", alpha=0.08, linewidth=0)
    _finish(axes[0], "answers/s", f"{cell.label}: over time", fontsize=8)
    axes[1].plot([], [], color="black", label="p50")
    axes[1].plot([], [], color="black", linestyle="--", label="p99")
    _finish(axes[1], "latency (ms)", "", fontsize=8)
    if with_cpu:
        _finish(axes[2], "server CPU (% of a core)", "")
    axes[-1].set_xlabel("seconds since the trial's first request (shaded: warm-up)")
    return True


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


TIMESERIES = FigureKind("timeseries", "Over time (1-second bins by completion): successful answers per second "
                        "(red x: failures per second; the last, partial second only in the CSV), p50 (solid) and "
                        "p99 (dashed) latency, the server's CPU; one colour per repetition, the warm-up shaded.",
                        _timeseries)


def palette(frameworks: Iterable[str]) -> Palette:
    """A colour per framework, in order of first appearance."""
    cycle = matplotlib.colormaps["tab10"].colors
    return {fw: matplotlib.colors.to_hex(cycle[i % len(cycle)]) for i, fw in enumerate(dict.fromkeys(frameworks))}


def _save(fig: Figure, target: Path, fmt: str) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    write_atomically(target, buffer.getvalue())


def render_figures(summary: Summary, out_dir: Path) -> list[RenderedFigure]:
    """Draws every figure that has data; returns them in model, then KINDS order."""
    colors = palette(c.framework for c in summary.cells)
    infos = {m.name: m for m in summary.models}
    rendered = []
    with matplotlib.rc_context(STYLE):
        for grid in grids(summary):
            for kind in KINDS:
                fig = Figure(figsize=SIZES.get(kind.key, (6.4, 3.8)), layout="constrained")
                if not kind.draw(fig, grid, colors, infos.get(grid.model)):
                    continue
                rendered.append(saved_figure(fig, out_dir, grid.name, kind, f"{grid.name}-{kind.key}"))
        for model in dict.fromkeys(c.model for c in summary.cells if c.capacity):
            fig = Figure(figsize=(6.4, 3.8), layout="constrained")
            if CAPACITY.draw(fig, [c for c in summary.cells if c.model == model], colors):
                rendered.append(saved_figure(fig, out_dir, model, CAPACITY, f"{model}-{CAPACITY.key}"))
        for model, cells in sweeps(summary).items():
            fig = Figure(figsize=(9.0, 3.8), layout="constrained")
            if SWEEP.draw(fig, cells, colors):
                rendered.append(saved_figure(fig, out_dir, model, SWEEP, f"{model}-{SWEEP.key}"))
    return rendered


def render_timeseries_figures(summary: Summary, series: dict[str, TrialSeries], out_dir: Path
                              ) -> list[RenderedFigure]:
    """One figure per cell whose trials have a time series (`series` by trial id)."""
    rendered = []
    with matplotlib.rc_context(STYLE):
        for cell in summary.cells:
            trials = [(t, series[t.trial_id]) for t in cell.repetitions if t.trial_id in series]
            fig = Figure(figsize=(7.0, 6.0), layout="constrained")
            if not TIMESERIES.draw(fig, cell, trials):
                continue
            name = f"{cell.model}-{cell.framework}-{cell.level_id}-{TIMESERIES.key}"
            rendered.append(saved_figure(fig, out_dir, cell.model, TIMESERIES, name, cell))
    return rendered


def saved_figure(fig: Figure, out_dir: Path, model: str, kind: FigureKind, stem: str,
           cell: CellSummary | None = None) -> RenderedFigure:
    # not with_suffix: model names may contain dots (an endpoint's host)
    png, svg = (out_dir / f"{stem}.{ext}" for ext in ("png", "svg"))
    _save(fig, png, "png")
    _save(fig, svg, "svg")
    return RenderedFigure(model, kind, png, svg, cell)
