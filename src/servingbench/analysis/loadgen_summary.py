"""LoadGen's own verdict and statistics, read from mlperf_log_summary.txt, as a TrialCounts."""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from servingbench.analysis.stats import summarize_records
from servingbench.results.schema import LatencyMs, TrialCounts

# Which summary line is the scenario's throughput; MultiStream reports none (its metric is a latency
# percentile), so there the rate of completions recorded in the window stands in.
THROUGHPUT = {"server": "completed samples per second", "offline": "samples per second",
              "single_stream": "qps w/o loadgen overhead"}


def parse_summary(path: Path) -> dict[str, str]:
    """'Key : value' lines, keys lower-cased; the first occurrence wins (the headline block)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and value.strip():
            values.setdefault(key.strip().lower(), value.strip())
    return values


def _ms(values: dict[str, str], key: str) -> float:
    return int(values[key]) / 1e6


def loadgen_counts(scenario: str, values: dict[str, str], records: pa.Table, start_ns: int,
                   end_ns: int) -> tuple[TrialCounts, dict]:
    """Throughput and latency as LoadGen measured them (from its issue times); failures from our records."""
    ours = summarize_records(records, start_ns, end_ns)
    latency = LatencyMs(mean=_ms(values, "mean latency (ns)"), min=_ms(values, "min latency (ns)"),
                        p50=_ms(values, "50.00 percentile latency (ns)"), p90=_ms(values, "90.00 percentile latency (ns)"),
                        p95=_ms(values, "95.00 percentile latency (ns)"), p99=_ms(values, "99.00 percentile latency (ns)"),
                        max=_ms(values, "max latency (ns)"))
    line = values.get(THROUGHPUT.get(scenario, ""))
    throughput = float(re.match(r"[\d.]+", line).group()) if line else ours.throughput_rps
    counts = ours.model_copy(update={"throughput_rps": throughput, "latency_ms": latency})
    result = {"valid": values.get("result is") == "VALID", "result": values.get("result is", "unknown"),
              "scheduled_per_s": float(values.get("scheduled samples per second", "nan")),
              "early_stopping_satisfied": values.get("early stopping satisfied", "").lower() == "yes"}
    return counts, result
