#!/usr/bin/env python3
"""The framework comparison table of a finished study, in Markdown: per framework and model, at each user count,
throughput (mean and 95% CI), p50 and p99, and the framework's overhead (client mean latency minus the model's
in-process mean), with its cold start, idle memory and install size.

    .venv/bin/servingbench run frameworks --out results/frameworks     # ~60 minutes on 2 cores
    .venv/bin/python benchmarks/frameworks_table.py results/frameworks
"""
from __future__ import annotations

import argparse
from pathlib import Path

from servingbench.pipeline import served_label
from servingbench.results.store import ResultsDir
from servingbench.usability.evidence import install_size
from servingbench.usability.scorecard import load_scorecards


def _ci(estimate) -> str:
    if estimate is None or estimate.mean is None:
        return "-"
    if estimate.ci95_low is None:  # one repetition
        return f"{estimate.mean:.2f}"
    return f"{estimate.mean:.2f} ({estimate.ci95_low:.2f}-{estimate.ci95_high:.2f})"


def _number(value: float | None, spec: str = "{:.1f}") -> str:
    return "-" if value is None else spec.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    summary = ResultsDir(args.results).load_summary()
    inprocess = {m.name: m.inprocess_latency_ms for m in summary.models}
    deployments = {(d.framework, d.model, d.pipeline): d for d in summary.deployments}
    cards = {c.framework: c for c in load_scorecards()}
    print("| framework | model | users | throughput req/s (95% CI) | p50 ms | p99 ms | overhead ms | runtime "
          "| cold start s | idle MB | install MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cell in summary.cells:
        cells = [served_label(cell.framework, cell.pipeline), cell.model, str(cell.users)]
        if not cell.repetitions:
            print("| " + " | ".join([*cells, f"{cell.status}: {cell.reason[:100]}", *[""] * 7]) + " |")
            continue
        base, mean = inprocess.get(cell.model), cell.latency_ms.get("mean")
        deployment = deployments.get((cell.framework, cell.model, cell.pipeline))
        card = cards.get(cell.framework)
        size = install_size(card.distributions, cell.framework)[0] if card else None
        cells += [_ci(cell.throughput_rps), _number(cell.latency_ms.get("p50")), _number(cell.latency_ms.get("p99")),
                  f"{mean - base.mean:+.1f}" if base and mean is not None else "-",
                  deployment.runtime if deployment else "-",
                  _number(deployment.startup_s if deployment else None),
                  _number(deployment.idle_rss_mb if deployment else None, "{:.0f}"),
                  _number(None if size is None else size / 2**20, "{:.0f}")]
        print("| " + " | ".join(cells) + " |")
    for name, latency in inprocess.items():
        if latency:
            print(f"\nin-process {name}: mean {latency.mean:.1f} ms, p50 {latency.p50:.1f}, p99 {latency.p99:.1f}")


if __name__ == "__main__":
    main()
