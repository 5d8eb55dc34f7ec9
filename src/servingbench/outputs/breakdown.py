"""Where a request's time goes, from the client's latency and the server's own counters."""
from __future__ import annotations

import statistics

from servingbench.results.schema import CellSummary

PREPROCESS = "client preprocessing"
CLIENT_SEND = "client send"
CLIENT_RECEIVE = "client receive"
OVERHEAD = "network + framework"
UNSPLIT = "network + server"  # no server counters to split it by
OTHER = "other server time"
QUEUE = "server queue"
INFERENCE = "inference"
PARTS = (PREPROCESS, CLIENT_SEND, OVERHEAD, UNSPLIT, OTHER, QUEUE, INFERENCE, CLIENT_RECEIVE)
ROUNDING_MS = 0.01  # a remainder below this is the counters' rounding, not a part


def server_metrics(cell: CellSummary) -> dict[str, float]:
    """Each counter averaged over the repetitions that report it."""
    keys = dict.fromkeys(k for trial in cell.repetitions for k in trial.server_metrics)
    return {k: statistics.fmean(t.server_metrics[k] for t in cell.repetitions if k in t.server_metrics)
            for k in keys}


def client_times(cell: CellSummary) -> dict[str, float]:
    """The client's own mean send and receive times, averaged over the repetitions whose engine took them."""
    found = {CLIENT_SEND: [t.client_send_ms.mean for t in cell.repetitions if t.client_send_ms],
             CLIENT_RECEIVE: [t.client_receive_ms.mean for t in cell.repetitions if t.client_receive_ms]}
    return {part: statistics.fmean(means) for part, means in found.items() if means}


def latency_breakdown(cell: CellSummary) -> dict[str, float]:
    """Milliseconds per part, in PARTS order; parts the framework does not report are left out.

    Client preprocessing happens before the timed request, so it adds to the client latency. Inside
    the latency, the client writing the request (client send) and reading the answer after its first
    byte (client receive) are the load generator's own time. The server's total (arrival to answer)
    minus its queue and inference is "other server time" (e.g. Triton's input/output copies); what
    is left of the latency is the network and the framework's HTTP layers ("network + server" where
    the framework has no counters). Counters that disagree slightly with the client clock clamp at 0.
    """
    metrics = server_metrics(cell)
    inside = {QUEUE: metrics.get("queue_ms_mean"), INFERENCE: metrics.get("inference_ms_mean")}
    inside = {k: v for k, v in inside.items() if v is not None}
    server = metrics.get("server_ms_mean", sum(inside.values()) if inside else None)
    parts = {}
    if cell.client_preprocess_ms:
        parts[PREPROCESS] = cell.client_preprocess_ms
    client = client_times(cell)
    parts.update(client)
    latency = cell.latency_ms.get("mean")
    if latency is not None:
        rest = latency - sum(client.values())
        if server is not None:
            parts[OVERHEAD] = max(rest - server, 0.0)
        elif client:
            parts[UNSPLIT] = max(rest, 0.0)
    if server is not None and server - sum(inside.values()) > ROUNDING_MS:
        parts[OTHER] = server - sum(inside.values())
    parts.update(inside)
    return {k: parts[k] for k in PARTS if k in parts}
