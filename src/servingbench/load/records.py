"""RequestRecord: one row per request, written to Parquet as the run goes.

Times are `time.perf_counter_ns()` values (CLOCK_MONOTONIC, shared by all processes on the host):
differences are exact; the trial summary's `started_at` dates the trial.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RECORD_SCHEMA = pa.schema([
    ("trial_id", pa.string()),
    ("worker_id", pa.int32()),
    ("sample", pa.int32()),         # index into the trial's prepared requests
    ("phase", pa.string()),         # "warmup" | "measure" (sent inside the measurement window)
    ("scheduled_ns", pa.int64()),   # intended send time (open-loop engines); null in a closed loop
    ("sent_ns", pa.int64()),
    ("end_ns", pa.int64()),
    ("latency_us", pa.int64()),
    ("ok", pa.bool_()),
    ("status", pa.int32()),         # HTTP status or gRPC code (0 = OK); 0 with an error: no answer at all
    ("error", pa.string()),         # null when ok
    ("bytes_out", pa.int64()),
    ("bytes_in", pa.int64()),
])

# A raw row as the hot path appends it: (worker_id, sample, sent_ns, end_ns, status, error, bytes_out, bytes_in
# [, scheduled_ns]) — open-loop engines add when the request was meant to go.
RawRow = tuple


class RecordWriter:
    """Appends raw rows to a Parquet file in row groups; the phase follows from the window start."""

    def __init__(self, path: Path, trial_id: str):
        self.path = path
        self.trial_id = trial_id
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, RECORD_SCHEMA, compression="zstd")
        self.rows_written = 0

    def write(self, rows: list[RawRow], measure_start_ns: int | None) -> None:
        if not rows:
            return
        worker, sample, sent, end, status, error, bytes_out, bytes_in, *scheduled = (list(c) for c in zip(*rows))
        sent_a = np.asarray(sent, dtype=np.int64)
        end_a = np.asarray(end, dtype=np.int64)
        status_a = np.asarray(status, dtype=np.int32)
        phase = np.full(len(rows), "warmup", dtype=object)
        if measure_start_ns is not None:
            phase[sent_a >= measure_start_ns] = "measure"
        ok = np.array([e is None for e in error])  # the sender names every failure, non-2xx included
        batch = pa.record_batch([
            pa.array([self.trial_id] * len(rows), pa.string()),
            pa.array(worker, pa.int32()),
            pa.array(sample, pa.int32()),
            pa.array(phase, pa.string()),
            pa.array(scheduled[0], pa.int64()) if scheduled else pa.nulls(len(rows), pa.int64()),
            pa.array(sent_a),
            pa.array(end_a),
            pa.array((end_a - sent_a) // 1000),
            pa.array(ok),
            pa.array(status_a),
            pa.array(error, pa.string()),
            pa.array(bytes_out, pa.int64()),
            pa.array(bytes_in, pa.int64()),
        ], schema=RECORD_SCHEMA)
        self._writer.write_batch(batch)
        self.rows_written += len(rows)

    def close(self) -> None:
        self._writer.close()


def read_records(path: Path) -> pa.Table:
    return pq.read_table(path, schema=RECORD_SCHEMA)
