"""The model run directly in this process: reference outputs and the latency floor for any server."""
from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import cycle, islice

from ..devices import synchronize
from ..errors import ServingbenchError
from .base import LoadedModel, Output, Sample


def reference_outputs(loaded: LoadedModel, samples: Sequence[Sample]) -> dict[str, Output]:
    """What every server must answer, per sample name."""
    return {sample.name: loaded.predict(sample.data) for sample in samples}


def measure_latency_ms(loaded: LoadedModel, samples: Sequence[Sample], iterations: int, warmup: int) -> list[float]:
    """Per-call predict() latencies in ms, cycling through the samples after `warmup` unrecorded calls.

    No server can beat these: they include preprocessing and postprocessing but no transport.
    """
    if not samples:
        raise ServingbenchError("no samples to measure latency with")
    if iterations < 1 or warmup < 0:
        raise ServingbenchError(f"need iterations >= 1 and warmup >= 0, got {iterations} and {warmup}")
    inputs = islice(cycle([sample.data for sample in samples]), warmup + iterations)
    latencies = []
    for i, data in enumerate(inputs):
        synchronize(loaded.device)  # nothing of the previous call still running on a GPU
        start = time.perf_counter_ns()
        loaded.predict(data)
        synchronize(loaded.device)
        elapsed = time.perf_counter_ns() - start
        if i >= warmup:
            latencies.append(elapsed / 1e6)
    return latencies
