#!/usr/bin/env python3
"""How faithfully does the open-loop (MLPerf LoadGen Server scenario) engine keep to its schedule?

    .venv/bin/python benchmarks/open_loop_accuracy.py [--delay-ms 20] [--duration 20] [--rates 50,100,200,500]

A fixed-delay endpoint (nginx + echo module if installed, else servingbench's delay server) is
driven with Poisson arrivals at each target rate. Printed per rate: the rate asked for, the rate
LoadGen scheduled (its Poisson draw), the rate completed, p50/p99 latency against the true delay,
and how late requests left (p99 send delay). Target on the 2-core build machine: completed within
2% of scheduled and p50 within 1 ms of the delay up to 500 requests/s.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness_overhead import load_trial, start_endpoint


def run_rate(url: str, rate: float, duration: float, out: Path) -> dict:
    trial = load_trial(url, out, "--scenario", "server", "--target-qps", str(rate), "--latency-bound-ms", "1000",
                       "--duration", str(duration))
    return {"scheduled": trial["loadgen"]["scheduled_per_s"], "completed": trial["throughput_rps"],
            "p50": trial["latency_ms"]["p50"], "p99": trial["latency_ms"]["p99"],
            "send_p99": trial["send_delay_ms"]["p99"], "failed": trial["failed"], "valid": trial["loadgen"]["valid"],
            "cpu": trial["load_cpu_percent"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rates", default="50,100,200,500")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sb-openloop-") as tmp:
        work = Path(tmp)
        proc, delay_url, _ = start_endpoint(work, args.delay_ms)
        try:
            print(f"\n{'target':>6} | {'scheduled':>9} {'completed':>9} {'compl/sched':>11} {'compl/target':>12} | "
                  f"{'p50 ms':>7} {'p50-delay':>9} {'p99 ms':>7} | {'send p99':>8} | failed | LoadGen CPU")
            for rate in [float(r) for r in args.rates.split(",")]:
                r = run_rate(delay_url, rate, args.duration, work / f"r{rate:g}")
                print(f"{rate:>6g} | {r['scheduled']:>9.1f} {r['completed']:>9.1f} {r['completed'] / r['scheduled']:>11.4f} "
                      f"{r['completed'] / rate:>12.4f} | {r['p50']:>7.2f} {r['p50'] - args.delay_ms:>+9.2f} "
                      f"{r['p99']:>7.2f} | {r['send_p99']:>8.2f} | {r['failed']:>6} | {r['cpu']:.0f}%")
        finally:
            proc.stop()


if __name__ == "__main__":
    main()
