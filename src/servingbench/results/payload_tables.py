"""The payload table of `servingbench load` with a payload set: per load level and payload, what was sent
and how fast it was answered."""
from __future__ import annotations

from servingbench.results.schema import Summary
from servingbench.results.tables import Table

PAYLOAD_HEADER = ["Level", "Payload", "Body bytes", "Bytes sent (mean)", "Requests", "Failed", "Mean ms", "p50 ms",
                  "p99 ms"]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def payload_tables(summary: Summary) -> list[Table]:
    """One table per endpoint (the model's place) whose cells counted their payloads; all repetitions pooled."""
    tables = []
    cells = [c for c in summary.cells if c.payloads]
    for model in dict.fromkeys(c.model for c in cells):
        rows = [[cell.level, p.payload, str(p.body_bytes), _fmt(p.bytes_out), str(p.requests), str(p.failed),
                 _fmt(p.latency_ms.mean if p.latency_ms else None), _fmt(p.latency_ms.p50 if p.latency_ms else None),
                 _fmt(p.latency_ms.p99 if p.latency_ms else None)]
                for cell in cells if cell.model == model for p in cell.payloads]
        tables.append(Table(f"{model}-payloads", f"Payloads sent to {model}: requests in the measurement windows "
                            "(all repetitions), bytes sent per request (closed loop: HTTP headers included; LoadGen: "
                            "the body) and latency of the successful ones", PAYLOAD_HEADER, rows))
    return tables
