"""Per-trial server-side figures from cumulative counters scraped before and after the trial."""
from __future__ import annotations

US_TOTAL = "_us_total"


def trial_server_metrics(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Counter deltas, plus `<stage>_ms_mean` per request for every `<stage>_us_total` counter and, for every
    histogram read whole (`<name>_sum` and `<name>_count`), `<name>_mean`: its sum's delta per observation."""
    deltas = {k: after[k] - before[k] for k in after if k in before}
    requests = deltas.get("requests_total", 0)
    means = {f"{k.removesuffix(US_TOTAL)}_ms_mean": v / 1000 / requests
             for k, v in deltas.items() if k.endswith(US_TOTAL) and requests > 0}
    histogram_means = {f"{k.removesuffix('_sum')}_mean": v / count for k, v in deltas.items()
                       if k.endswith("_sum") and (count := deltas.get(f"{k.removesuffix('_sum')}_count", 0)) > 0}
    return {**deltas, **means, **histogram_means}
