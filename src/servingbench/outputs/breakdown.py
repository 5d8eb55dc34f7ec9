"""Where a request's time goes, from the client's latency and the server's own counters."""
from __future__ import annotations

import statistics

from servingbench.results.schema import CellSummary

PREPROCESS = "client preprocessing"
OVERHEAD = "network + framework"
OTHER = "other server time"
QUEUE = "server queue"
INFERENCE = "inference"
PARTS = (PREPROCESS, OVERHEAD, OTHER, QUEUE, INFERENCE)
ROUNDING_MS = 0.01  # a remainder below this is the counters' rounding, not a part


def server_metrics(cell: CellSummary) -> dict[str, float]:
    """Each counter averaged over the repetitions that report it."""
    keys = dict.fromkeys(k for trial in cell.repetitions for k in trial.server_metrics)
    return {k: statistics.fmean(t.server_metrics[k] for t in cell.repetitions if k in t.server_metrics)
            for k in keys}


def latency_breakdown(cell: CellSummary) -> dict[str, float]:
    """Milliseconds per part, in PARTS order; parts the framework does not report are left out.

    Client preprocessing happens before the timed request, so it adds to the client latency. The
    server's total (arrival to answer) minus its queue and inference is "other server time" (e.g.
    Triton's input/output copies); the client latency minus the server's total is the network and
    the framework's HTTP layers. Counters that disagree slightly with the client clock clamp at 0.
    """
    metrics = server_metrics(cell)
    inside = {QUEUE: metrics.get("queue_ms_mean"), INFERENCE: metrics.get("inference_ms_mean")}
    inside = {k: v for k, v in inside.items() if v is not None}
    server = metrics.get("server_ms_mean", sum(inside.values()) if inside else None)
    parts = {}
    if cell.client_preprocess_ms:
        parts[PREPROCESS] = cell.client_preprocess_ms
    latency = cell.latency_ms.get("mean")
    if latency is not None and server is not None:
        parts[OVERHEAD] = max(latency - server, 0.0)
    if server is not None and server - sum(inside.values()) > ROUNDING_MS:
        parts[OTHER] = server - sum(inside.values())
    parts.update(inside)
    return {k: parts[k] for k in PARTS if k in parts}
