"""The tune's Pareto figure per model (figures/pareto-<model>.png|svg): every candidate's throughput at the
bound against its bounded percentile, the front highlighted."""
from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from servingbench.outputs.figures import STYLE, FigureKind, Palette, RenderedFigure, palette, saved_figure
from servingbench.outputs.tune_tables import models, pareto_front, percentile_name, points
from servingbench.results.tune_schema import DEFAULT_CANDIDATE, TuneSummary


def _pareto(fig: Figure, summary: TuneSummary, model: str, colors: Palette) -> bool:
    shown = points(summary, model)
    if not shown:
        return False
    ax = fig.subplots()
    front = set(pareto_front([(p.latency_ms, p.throughput_rps) for p in shown]))
    line = sorted((shown[i] for i in front), key=lambda p: (p.latency_ms, p.throughput_rps))
    ax.plot([p.latency_ms for p in line], [p.throughput_rps for p in line], color="black", linewidth=1, zorder=1)
    for i, p in enumerate(shown):
        color = colors[p.framework]
        if i in front:  # a black ring around the candidate's own marker
            ax.plot(p.latency_ms, p.throughput_rps, marker="o", markersize=14, markerfacecolor="none",
                    markeredgecolor="black", markeredgewidth=1.5, linestyle="", zorder=2)
            ax.annotate(f"{p.framework}: {p.candidate.id}", (p.latency_ms, p.throughput_rps),
                        textcoords="offset points", xytext=(8, -10), fontsize=7)
        ax.plot(p.latency_ms, p.throughput_rps, marker="o", linestyle="", zorder=3, color=color,
                markersize=8 if i in front else 6, markeredgewidth=2,
                markerfacecolor="white" if p.candidate.id == DEFAULT_CANDIDATE else color)
    pct = percentile_name(summary)
    ax.axvline(summary.latency_bound_ms, color="black", linestyle="--", linewidth=1)
    handles = [Line2D([], [], color=colors[fw], marker="o", linestyle="", label=fw)
               for fw in dict.fromkeys(p.framework for p in shown)]
    handles += [Line2D([], [], color="grey", marker="o", markerfacecolor="white", linestyle="", label="defaults"),
                Line2D([], [], color="black", marker="o", markersize=10, markerfacecolor="none",
                       markeredgewidth=1.5, label="Pareto front"),
                Line2D([], [], color="black", linestyle="--", label=f"bound {summary.latency_bound_ms:g} ms")]
    ax.set_xlim(left=0, right=max(summary.latency_bound_ms, *(p.latency_ms for p in shown)) * 1.08)
    ax.set_ylim(0, max(p.throughput_rps for p in shown) * 1.12)
    ax.set_xlabel(f"{pct} latency at the candidate's best level (ms)")
    ax.set_ylabel("throughput at the bound (requests per second)")
    ax.set_title(f"{model}: every candidate's throughput against its {pct} latency")
    ax.legend(handles=handles, fontsize=8, loc="best")
    return True


PARETO = FigureKind("pareto", "Every candidate measured: throughput at the best closed-loop level that held the "
                    "bound against the bounded percentile there (one sweep each); colour per framework, hollow = the "
                    "framework's default settings. Ringed points joined by the black line are the Pareto front "
                    "(no other candidate is faster at no higher latency, or quicker at no lower throughput); the dashed "
                    "line is the bound. "
                    "Candidates with no level under the bound are not drawn (see tune-candidates.csv).", _pareto)


def render_tune_figures(summary: TuneSummary, out_dir: Path) -> list[RenderedFigure]:
    colors = palette(r.framework for r in summary.results)
    rendered = []
    with matplotlib.rc_context(STYLE):
        for model in models(summary):
            fig = Figure(figsize=(6.4, 4.2), layout="constrained")
            if PARETO.draw(fig, summary, model, colors):
                rendered.append(saved_figure(fig, out_dir, model, PARETO, f"pareto-{model}"))
    return rendered
