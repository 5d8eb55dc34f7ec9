"""What an answered request costs, from the server's telemetry over the measurement windows of some trials."""
from __future__ import annotations

from servingbench.results.schema import Cost, TrialSummary

SECONDS_PER_HOUR = 3600.0


def request_cost(trials: list[TrialSummary], price_per_core_hour: float | None = None,
                 price_per_gpu_hour: float | None = None) -> Cost:
    """CPU-seconds per answer: the server tree's mean CPU (% of a core, sampled in each window) x the window,
    summed over trials, over the answers in them; GPU-seconds the same way from mean utilisation."""
    answers = sum(t.ok for t in trials)
    cpu_s = _busy_seconds(trials, "server_cpu_percent")
    gpu_s = _busy_seconds(trials, "gpu_util_percent")
    cpu_per = cpu_s / answers if answers and cpu_s is not None else None
    gpu_per = gpu_s / answers if answers and gpu_s is not None else None
    priced = [(per, price) for per, price in ((cpu_per, price_per_core_hour), (gpu_per, price_per_gpu_hour))
              if price is not None]
    cost = (sum(per * price for per, price in priced if per is not None) / SECONDS_PER_HOUR * 1e6
            if priced and all(per is not None for per, _ in priced) else None)
    return Cost(server_cpu_s_per_request=cpu_per, requests_per_core_s=1 / cpu_per if cpu_per else None,
                gpu_s_per_request=gpu_per, price_per_core_hour=price_per_core_hour,
                price_per_gpu_hour=price_per_gpu_hour, cost_per_million=cost)


def _busy_seconds(trials: list[TrialSummary], stat: str) -> float | None:
    """Sum over trials of mean % / 100 x window; None when a trial has no such samples (no GPU, no telemetry)."""
    total = 0.0
    for trial in trials:
        mean = getattr(trial.resources, stat, None) if trial.resources else None
        if mean is None:
            return None
        total += mean.mean / 100 * trial.duration_s
    return total
