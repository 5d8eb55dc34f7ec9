"""LoadGen's own verdict and statistics, read from mlperf_log_summary.txt, as a TrialCounts."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from servingbench.analysis.stats import latency_summary, summarize_records
from servingbench.results.schema import LatencyMs, LoadGenVerdict, TrialCounts

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


def parse_detail(path: Path) -> dict[str, object]:
    """The key/value events of mlperf_log_detail.txt (`:::MLLOG {json}` lines); the last value of a key wins."""
    values: dict[str, object] = {}
    for line in path.read_text().splitlines():
        if line.startswith(":::MLLOG "):
            event = json.loads(line[len(":::MLLOG "):])
            values[event["key"]] = event["value"]
    return values


def _ms(values: dict[str, str], key: str) -> float:
    return int(values[key]) / 1e6


def percentile_latency_ms(values: dict[str, str], percentile: float) -> float | None:
    """LoadGen's latency at `percentile` (it reports 50, 90, 95, 97, 99 and 99.9)."""
    key = f"{percentile:.2f} percentile latency (ns)"
    return _ms(values, key) if key in values else None


def send_delay_ms(records: pa.Table) -> LatencyMs | None:
    """How long after LoadGen issued them requests actually left (waiting for a free sender)."""
    scheduled = records.column("scheduled_ns").to_numpy(zero_copy_only=False)
    if scheduled.size == 0 or np.isnan(scheduled.astype(float)).any():
        return None
    return latency_summary((records.column("sent_ns").to_numpy() - scheduled.astype(np.int64)) / 1e6)


def loadgen_counts(scenario: str, values: dict[str, str], detail: dict[str, object], records: pa.Table,
                   start_ns: int, end_ns: int, percentile: float) -> tuple[TrialCounts, LoadGenVerdict]:
    """Throughput and latency as LoadGen measured them (from its schedule); failures from our records."""
    ours = summarize_records(records, start_ns, end_ns)
    latency = LatencyMs(mean=_ms(values, "mean latency (ns)"), min=_ms(values, "min latency (ns)"),
                        p50=_ms(values, "50.00 percentile latency (ns)"), p90=_ms(values, "90.00 percentile latency (ns)"),
                        p95=_ms(values, "95.00 percentile latency (ns)"), p99=_ms(values, "99.00 percentile latency (ns)"),
                        max=_ms(values, "max latency (ns)"))
    number = re.match(r"[\d.]+", values.get(THROUGHPUT.get(scenario, ""), ""))
    throughput = float(number.group()) if number else ours.throughput_rps
    counts = ours.model_copy(update={"throughput_rps": throughput, "latency_ms": latency})
    queries = detail.get("result_query_count")
    verdict = LoadGenVerdict(
        valid=values.get("result is") == "VALID", result=values.get("result is", "unknown"),
        scheduled_per_s=float(values["scheduled samples per second"]) if "scheduled samples per second" in values
        else None,
        early_stopping_satisfied=values.get("early stopping satisfied", "").lower() == "yes",
        performance_constraints_satisfied=values.get("performance constraints satisfied", "").lower() == "yes",
        queries=int(queries) if isinstance(queries, (int, float, str)) else None,
        samples_per_query=int(values.get("samples_per_query", 1)),
        bounded_latency_ms=percentile_latency_ms(values, percentile))
    return counts, verdict
