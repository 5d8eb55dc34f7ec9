"""RequestRecord: one row per request, written to Parquet as the run goes.

Times are `time.perf_counter_ns()` values (CLOCK_MONOTONIC, shared by all processes on the host):
differences are exact; the trial summary's `started_at` dates the trial.
"""
from __future__ import annotations

import struct
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
    ("prepared_ns", pa.int64()),    # the client began its per-request work (preprocessing, encoding: the study's
                                    # client_preprocess per_request); null: the request was made before the trial
    ("sent_ns", pa.int64()),        # the write began
    ("written_ns", pa.int64()),     # the request was fully written (client send = written - sent); null: unknown
    ("first_byte_ns", pa.int64()),  # the answer's first byte arrived (client receive = end - first byte); null: unknown
    ("end_ns", pa.int64()),         # the answer's last byte arrived (the kernel's stamp where it gives one)
    ("read_ns", pa.int64()),        # the load generator had read the whole answer (its own lag = read - end); null: unknown
    ("latency_us", pa.int64()),     # end - sent, or end - prepared where the client prepared it in the loop
    ("ok", pa.bool_()),
    ("status", pa.int32()),         # HTTP status or gRPC code (0 = OK); 0 with an error: no answer at all
    ("error", pa.string()),         # null when ok
    ("bytes_out", pa.int64()),      # HTTP: the request as written, headers included
    ("bytes_in", pa.int64()),       # HTTP: the answer as read, headers included
])

# The hot path packs each request's timings into a preallocated buffer: no object per request for
# the garbage collector to walk while the trial runs. 0 marks a time the engine could not take.
TIMING_ROW = struct.Struct("<iiqqqqqqqiiqq")
TIMING_DTYPE = np.dtype([("worker_id", "<i4"), ("sample", "<i4"), ("scheduled_ns", "<i8"), ("prepared_ns", "<i8"),
                         ("sent_ns", "<i8"),
                         ("written_ns", "<i8"), ("first_byte_ns", "<i8"), ("end_ns", "<i8"), ("read_ns", "<i8"),
                         ("status", "<i4"), ("error", "<i4"), ("bytes_out", "<i8"), ("bytes_in", "<i8")])
assert TIMING_DTYPE.itemsize == TIMING_ROW.size
BLOCK_ROWS = 65536


class TimingBuffer:
    """Fixed-size rows in preallocated blocks; errors are stored as indexes into `errors` (0: none).

    Not thread-safe: one writer at a time (gevent greenlets never switch inside `append`; threads
    hold a lock)."""

    def __init__(self, block_rows: int = BLOCK_ROWS):
        self.block_rows = block_rows
        self.errors: list[str | None] = [None]
        self._error_codes: dict[str, int] = {}
        self._blocks = [bytearray(TIMING_ROW.size * block_rows)]
        self._first_block = 0  # index (in rows) of the first row of _blocks[0]
        self._free = 0         # next free row in the last block
        self._pack = TIMING_ROW.pack_into
        self.taken = 0         # rows handed out by take()

    def __len__(self) -> int:
        return self._first_block + (len(self._blocks) - 1) * self.block_rows + self._free

    def append(self, worker_id: int, sample: int, scheduled_ns: int, prepared_ns: int, sent_ns: int,
               written_ns: int, first_byte_ns: int, end_ns: int, read_ns: int, status: int, error: str | None,
               bytes_out: int, bytes_in: int) -> None:
        slot = self._free
        if slot == self.block_rows:
            self._blocks.append(bytearray(TIMING_ROW.size * self.block_rows))
            slot = 0
        code = 0 if error is None else self._error_codes.get(error) or self._error_code(error)
        self._pack(self._blocks[-1], slot * TIMING_ROW.size, worker_id, sample, scheduled_ns, prepared_ns, sent_ns,
                   written_ns, first_byte_ns, end_ns, read_ns, status, code, bytes_out, bytes_in)
        self._free = slot + 1

    def _error_code(self, error: str) -> int:
        self.errors.append(error)
        return self._error_codes.setdefault(error, len(self.errors) - 1)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """A copy of rows [start, stop) as a TIMING_DTYPE array; rows before `taken` may be gone."""
        if start < self._first_block:
            raise IndexError(f"rows before {self._first_block} were already taken")
        parts = []
        for i, block in enumerate(self._blocks):
            block_start = self._first_block + i * self.block_rows
            lo, hi = max(start, block_start), min(stop, block_start + self.block_rows)
            if lo < hi:
                parts.append(np.frombuffer(block, TIMING_DTYPE, hi - lo, (lo - block_start) * TIMING_ROW.size))
        return np.concatenate(parts) if parts else np.empty(0, TIMING_DTYPE)

    def take(self) -> np.ndarray:
        """Every row not taken before; full blocks already taken are released."""
        stop = len(self)
        taken = self.rows(self.taken, stop)
        self.taken = stop
        while len(self._blocks) > 1 and self._first_block + self.block_rows <= stop:
            self._blocks.pop(0)
            self._first_block += self.block_rows
        return taken


class RecordWriter:
    """Appends timing rows to a Parquet file in row groups; the phase follows from the window start."""

    def __init__(self, path: Path, trial_id: str):
        self.path = path
        self.trial_id = trial_id
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, RECORD_SCHEMA, compression="zstd")
        self.rows_written = 0

    def write(self, rows: np.ndarray, errors: list[str | None], measure_start_ns: int | None) -> None:
        """`rows` as TimingBuffer.take() gives them, `errors` its error table."""
        if not rows.size:
            return
        sent, end, prepared = rows["sent_ns"], rows["end_ns"], rows["prepared_ns"]
        phase = np.full(len(rows), "warmup", dtype=object)
        if measure_start_ns is not None:
            phase[sent >= measure_start_ns] = "measure"
        error_text = np.array(errors, dtype=object)[rows["error"]]
        batch = pa.record_batch([
            pa.array([self.trial_id] * len(rows), pa.string()),
            pa.array(rows["worker_id"]),
            pa.array(rows["sample"]),
            pa.array(phase, pa.string()),
            _known(rows["scheduled_ns"]),
            _known(prepared),
            pa.array(sent),
            _known(rows["written_ns"]),
            _known(rows["first_byte_ns"]),
            pa.array(end),
            _known(rows["read_ns"]),
            pa.array((end - np.where(prepared == 0, sent, prepared)) // 1000),
            pa.array(rows["error"] == 0),  # the sender names every failure, non-2xx included
            pa.array(rows["status"]),
            pa.array(error_text, pa.string()),
            pa.array(rows["bytes_out"]),
            pa.array(rows["bytes_in"]),
        ], schema=RECORD_SCHEMA)
        self._writer.write_batch(batch)
        self.rows_written += len(rows)

    def close(self) -> None:
        self._writer.close()


def _known(times: np.ndarray) -> pa.Array:
    """A time column with 0 (not taken) as null."""
    return pa.array(times, mask=times == 0)


def read_records(path: Path) -> pa.Table:
    return pq.read_table(path, schema=RECORD_SCHEMA)
