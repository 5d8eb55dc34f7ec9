"""Requests, sizes and latency per payload of `servingbench load`, from a cell's request records."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from servingbench.analysis.stats import latency_summary
from servingbench.results.schema import PayloadCounts


def payload_counts(records: list[pa.Table], names: list[str], body_bytes: list[int]) -> list[PayloadCounts]:
    """Per payload (the records' `sample` is its index in `names`), the requests sent in the measurement windows
    of every repetition: how many, how many failed, the mean bytes written, the latency of those that succeeded."""
    if not records:
        return []
    table = pa.concat_tables(records)
    measured = table.filter(pc.equal(table.column("phase"), "measure"))
    index = measured.column("sample").to_numpy() % len(names)
    ok = measured.column("ok").to_numpy(zero_copy_only=False)
    latency_ms = measured.column("latency_us").to_numpy() / 1000.0
    bytes_out = measured.column("bytes_out").to_numpy()
    counts = []
    for i, (name, size) in enumerate(zip(names, body_bytes)):
        mine = index == i
        sent = int(mine.sum())
        counts.append(PayloadCounts(payload=name, body_bytes=size, requests=sent, failed=int((mine & ~ok).sum()),
                                    bytes_out=float(bytes_out[mine].mean()) if sent else None,
                                    latency_ms=latency_summary(latency_ms[mine & ok])))
    return counts
