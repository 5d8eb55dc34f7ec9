"""The device check's table: what `servingbench run` measured per model, beside the reference study's figures.

    python benchmarks/gpu_check.py RESULTS/summary.json

Reads summary.json as plain JSON (no servingbench, no pydantic), so any Python 3 runs it. Prints, per model
and framework (and once per model, the device it ran on): mean (the study's statistic), p50 and p99 latency at
the fewest users;
throughput at the fewest and the most users; the GPU's utilisation, peak memory and power at the most users,
where the trials sampled them; then the study's figures for the same model. Exit 0 when every cell is ok (or
unsupported) and the study finished, 1 when a cell failed, nothing was measured or the study stopped early, 2 when
the file can't be read.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

# The study's Table 6, "Frameworks' performance, based on latency at 1 user (in milliseconds)", and Table 7,
# "Frameworks' performance, based on throughput at 100 users (in RPS)" (None: '-' in the table: not served).
# Keys: servingbench's model names.
STUDY_FRAMEWORKS = ("TorchServe", "TF Serving", "Triton (PyTorch)", "Triton (TensorFlow)")
STUDY_TABLE_6_LATENCY_MS_1_USER = {
    "resnet50": (11.29, 21.43, 12.87, 16.89),
    "wav2vec2": (28.51, None, 29.62, 92.43),
    "wav2vec2-truncated": (18.33, 54.20, 16.92, 28.87),
    "bart-large-cnn": (695.00, None, None, None),
}
STUDY_TABLE_7_THROUGHPUT_RPS_100_USERS = {
    "resnet50": (104.10, 40.59, 99.74, 74.53),
    "wav2vec2": (35.16, None, 41.43, 24.51),
    "wav2vec2-truncated": (51.24, 69.34, 83.14, 41.14),
    "bart-large-cnn": (1.4412, None, None, None),
}


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _resource(cell: dict | None, name: str, field: str) -> list[float]:
    """One resource statistic over the cell's repetitions (absent where no GPU was sampled)."""
    values = []
    for trial in (cell or {}).get("repetitions") or []:
        stat = (trial.get("resources") or {}).get(name) or {}
        if stat.get(field) is not None:
            values.append(float(stat[field]))
    return values


def _throughput(cell: dict | None) -> float | None:
    return ((cell or {}).get("throughput_rps") or {}).get("mean")


def _label(cell: dict) -> str:
    pipeline = cell.get("pipeline", "end_to_end")
    return cell["framework"] if pipeline == "end_to_end" else f"{cell['framework']} ({pipeline})"


def study_line(model: str) -> str:
    latency, throughput = STUDY_TABLE_6_LATENCY_MS_1_USER.get(model), STUDY_TABLE_7_THROUGHPUT_RPS_100_USERS.get(model)
    if latency is None or throughput is None:
        return "  study: no figures for this model"
    parts = [f"{name} {latency[i]:g} ms / {throughput[i]:g} rps" for i, name in enumerate(STUDY_FRAMEWORKS)
             if latency[i] is not None and throughput[i] is not None]
    return "  study (Table 6 mean latency at 1 user / Table 7 throughput at 100 users): " + "; ".join(parts)


def table(summary: dict) -> tuple[list[str], list[str]]:
    """(the printed lines, the problems that make the check fail)."""
    closed = [c for c in summary.get("cells", []) if c.get("scenario", "closed") == "closed"]
    problems = [f"{_label(c)} / {c['model']} / {c['users']} users: {c['status']}: {c.get('reason') or 'no reason'}"
                for c in closed if c.get("status") not in ("ok", "unsupported")]
    if not any(c.get("status") == "ok" for c in closed):
        problems.append("no cell was measured")
    if not summary.get("complete"):  # stopped (the budget, Ctrl-C) or crashed: what is missing was never measured
        problems.append("the study did not finish: cells after the last one shown were not run")
    users = sorted({c["users"] for c in closed})
    low, high = (users[0], users[-1]) if users else (1, 1)
    header = (f"{'framework':<22}{f'mean@{low}u ms':>13}{f'p50@{low}u ms':>12}{f'p99@{low}u ms':>12}"
              f"{f'rps@{low}u':>10}{f'rps@{high}u':>10}{f'GPU%@{high}u':>11}{'GPU MB':>9}{'GPU W':>8}  status")
    lines: list[str] = []
    models = list(dict.fromkeys(c["model"] for c in closed))
    for model in models:
        info = next((m for m in summary.get("models", []) if m.get("name") == model), {})
        inprocess = (info.get("inprocess_latency_ms") or {}).get("p50")
        # a study runs on one device: said once per model (each cell has it too)
        devices = ", ".join(dict.fromkeys(c["device"] for c in closed if c["model"] == model and c.get("device")))
        lines += ["", f"{model} ({info.get('size', '?')} size; on {devices or '?'}; in-process p50 "
                      f"{_number(inprocess)} ms)", header]
        cells = [c for c in closed if c["model"] == model]
        for label in dict.fromkeys(_label(c) for c in cells):
            by_users = {c["users"]: c for c in cells if _label(c) == label}
            first, last = by_users.get(low), by_users.get(high)
            latency = (first or {}).get("latency_ms") or {}
            util, memory = _resource(last, "gpu_util_percent", "mean"), _resource(last, "gpu_memory_mb", "max")
            power = _resource(last, "gpu_power_w", "mean")
            statuses = ",".join(dict.fromkeys(c["status"] for c in by_users.values()))
            lines.append(f"{label:<22}{_number(latency.get('mean')):>13}{_number(latency.get('p50')):>12}"
                         f"{_number(latency.get('p99')):>12}"
                         f"{_number(_throughput(first)):>10}{_number(_throughput(last)):>10}"
                         f"{_number(_mean(util), 1):>11}{_number(max(memory) if memory else None, 0):>9}"
                         f"{_number(_mean(power), 1):>8}  {statuses}")
            lines += [f"    {c['users']} users {c['status']}: {c['reason']}" for c in by_users.values()
                      if c.get("status") == "unsupported" and c.get("reason")]
        lines.append(study_line(model))
    return lines, problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: gpu_check.py SUMMARY_JSON", file=sys.stderr)
        return 2
    try:
        summary = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"gpu_check: cannot read {argv[0]}: {exc}", file=sys.stderr)
        return 2
    lines, problems = table(summary)
    print("\n".join(lines).lstrip("\n"))
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
