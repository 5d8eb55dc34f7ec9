#!/usr/bin/env python3
"""What distributed load (Locust master/worker) buys and costs: `servingbench load --load-workers N` against wrk.

    .venv/bin/python benchmarks/distributed_load.py [--workers 1,2,auto] [--duration 10] [--runs 3]

1. A no-delay endpoint (nginx's `return 200` where nginx is installed, else delay_endpoint.c at 0 µs):
   the most requests per second servingbench records with each --workers setting, at 50 users, next to
   wrk's at 50 connections.
2. A 10 ms endpoint (benchmarks/delay_endpoint.c, microsecond timer), 50 users: throughput and latency of
   each --workers setting against wrk's, i.e. the overhead of the distributed path.
Figures are min/median/max over --runs runs; the tools take turns within each run.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from harness_overhead import (
    column,
    diff,
    load_trial,
    paired,
    print_table,
    ratio,
    run_wrk,
    spread,
    start_endpoint,
    start_precise_endpoint,
)

USERS = 50


def run_workers(url: str, workers: str, duration: float, out: Path) -> dict:
    trial = load_trial(url, out, "--method", "GET", "--users", str(USERS), "--duration", str(duration),
                       "--warmup", "2", "--load-workers", workers)
    return {"rps": trial["throughput_rps"], "records_per_s": trial["requests"] / trial["duration_s"],
            "mean": trial["latency_ms"]["mean"], "p99": trial["latency_ms"]["p99"],
            "load_cpu": trial["load_cpu_percent"], "processes": max(1, len(trial["load_workers"]))}


def section(url: str, label: str, settings: list[str], args, work: Path) -> None:
    runs: dict[str, list[dict]] = {"wrk": []}
    runs.update({w: [] for w in settings})
    for run in range(args.runs):
        runs["wrk"].append(run_wrk(url, USERS, args.duration))
        for workers in settings:
            runs[workers].append(run_workers(url, workers, args.duration, work / f"{label}-{workers}-{run}"))
    print(f"\n{label}, {USERS} users, {args.runs} run(s) of {args.duration:g} s, min/median/max:")
    rows = [["wrk", "", spread(column(runs["wrk"], "rps"), ",.0f"), "",
             spread(column(runs["wrk"], "mean"), ".2f"), spread(column(runs["wrk"], "p99"), ".2f"), "", ""]]
    for workers in settings:
        results = runs[workers]
        rows.append([f"--load-workers {workers}", spread(column(results, "processes"), ".0f"),
                     spread(column(results, "records_per_s"), ",.0f"),
                     spread(paired(runs["wrk"], results, "rps", ratio), ".3f"),
                     spread(column(results, "mean"), ".2f"), spread(column(results, "p99"), ".2f"),
                     spread(paired(runs["wrk"], results, "mean", diff), "+.2f"),
                     spread(column(results, "load_cpu"), ".0f")])
    print_table(["tool", "processes", "req/s", "vs wrk", "mean ms", "p99 ms", "mean − wrk", "load CPU %"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,auto", help="the --load-workers settings to compare")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    settings = args.workers.split(",")
    with tempfile.TemporaryDirectory(prefix="sb-distributed-") as tmp:
        work = Path(tmp)
        proc, _, fast_url = start_endpoint(work, 10.0)
        try:
            section(fast_url, "no-delay endpoint", settings, args, work)
        finally:
            proc.stop()
        precise = start_precise_endpoint(work, 10.0)
        if precise:
            try:
                section(precise[1], "10 ms endpoint", settings, args, work)
            finally:
                precise[0].stop()


if __name__ == "__main__":
    main()
