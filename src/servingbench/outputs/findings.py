"""What the results say, in sentences: who is fastest and how sure that is, where the time goes,
what to distrust (warnings, failures) and whether the answers were right."""
from __future__ import annotations

from dataclasses import dataclass

from servingbench.outputs.breakdown import latency_breakdown
from servingbench.pipeline import served_label
from servingbench.results.schema import Estimate, Summary
from servingbench.results.tables import LATENCY, THROUGHPUT, Grid, Metric, unsupported_notes

SHORT_UNITS = {THROUGHPUT.key: "req/s", LATENCY.key: "ms"}
WRONG = "WRONG"


@dataclass(frozen=True)
class Verdict:
    question: str
    winner: str  # "" when nothing was measured
    answer: str


def ci_overlap(a: Estimate | None, b: Estimate | None) -> bool | None:
    """Whether two 95% CIs overlap; None when either has none (a single repetition)."""
    if a is None or b is None or None in (a.ci95_low, a.ci95_high, b.ci95_low, b.ci95_high):
        return None
    return a.ci95_low <= b.ci95_high and b.ci95_low <= a.ci95_high


def users_label(users: int) -> str:
    return f"{users} user{'s' if users > 1 else ''}"


def number(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _with_ci(estimate: Estimate | None, unit: str) -> str:
    if estimate is None or estimate.mean is None:
        return "no value"
    if estimate.ci95_low is None or estimate.ci95_high is None:
        return f"{number(estimate.mean)} {unit} (one repetition: no CI)"
    return f"{number(estimate.mean)} {unit} (95% CI {number(estimate.ci95_low)}–{number(estimate.ci95_high)})"


def _verdict(grid: Grid, users: int, metric: Metric, question: str) -> Verdict:
    ranking = grid.ranking(users, metric)
    if not ranking:
        return Verdict(question, "", f"no framework was measured at {users_label(users)}.")
    unit = SHORT_UNITS[metric.key]
    (best_fw, best), rest = ranking[0], ranking[1:]
    answer = _with_ci(metric.estimate(best), unit)
    if rest:
        next_fw, runner_up = rest[0]
        answer += f"; runner-up {next_fw}: {_with_ci(metric.estimate(runner_up), unit)}. "
        overlap = ci_overlap(metric.estimate(best), metric.estimate(runner_up))
        if overlap is None:
            answer += "How sure: unknown, one repetition gives no CI (run 2 or more)."
        elif overlap:
            answer += f"The CIs overlap: {best_fw} and {next_fw} are not distinguishable."
        else:
            answer += f"The CIs do not overlap: {best_fw} is ahead."
    else:
        answer += f", the only framework measured at {users_label(users)}."
    extra = [f"{fw} +{number(c.client_preprocess_ms)} ms ({number(metric.value(c) + c.client_preprocess_ms)} ms "
             "end to end)" for fw, c in ranking if c.client_preprocess_ms]
    if metric is LATENCY and extra:
        answer += f" Client-side preprocessing, done before timing, adds {', '.join(extra)}."
    return Verdict(question, best_fw, answer)


def model_verdicts(grid: Grid) -> list[Verdict]:
    """The study's two questions: latency at the lowest load (Table 6), throughput at the highest (Table 7)."""
    low, high = grid.users[0], grid.users[-1]
    return [_verdict(grid, low, LATENCY, f"Lowest latency at {users_label(low)}"),
            _verdict(grid, high, THROUGHPUT, f"Highest throughput at {users_label(high)}")]


def breakdown_lines(grid: Grid, inprocess_ms: float | None) -> list[str]:
    """One line per framework: its parts at the lowest load, largest first, with shares."""
    users = grid.users[0]
    lines = []
    for fw in grid.frameworks:
        cell = grid.measured(fw, users)
        parts = latency_breakdown(cell) if cell else {}
        if not parts:
            continue
        total = sum(parts.values())
        shares = ", ".join(f"{name} {number(ms)} ms ({ms / total:.0%})"
                           for name, ms in sorted(parts.items(), key=lambda p: -p[1]) if ms >= 0.005)
        lines.append(f"{fw} at {users_label(users)}: {number(total)} ms end to end = {shares}")
    if lines and inprocess_ms is not None:
        lines.append(f"the model alone, in-process: {number(inprocess_ms)} ms (the floor for any server)")
    return lines


def warnings(summary: Summary) -> list[str]:
    """Everything that makes a number doubtful or missing, most serious first."""
    found = []
    if not summary.complete:
        found.append("the study did not finish: results cover only the trials that completed")
    found += [f"{fw} / {model}: wrong answers: {verdict}" for fw, model, verdict in correctness(summary)
              if verdict.startswith(WRONG)]
    found += unsupported_notes(summary)
    for c in summary.cells:
        where = c.label
        if c.status == "running":
            found.append(f"{where}: interrupted after {len(c.repetitions)} repetition(s)")
        found += [f"{where}: {w}" for w in c.warnings]
        found += [f"{where}, repetition {t.repetition}: {w}" for t in c.repetitions for w in t.warnings]
    return found


def correctness(summary: Summary) -> list[tuple[str, str, str]]:
    """(framework, model, verdict) once per pair, from the first cell that was checked."""
    verdicts = {}
    for c in summary.cells:
        key = (served_label(c.framework, c.pipeline), c.model)
        if c.correct is not None and key not in verdicts:
            state = {True: "correct", False: WRONG, None: "not checked"}[c.correct.ok]
            checked = f", {c.correct.samples_checked} samples" if c.correct.samples_checked else ""
            verdicts[key] = f"{state}{checked}: {c.correct.reason}" if c.correct.reason else state + checked
    return [(fw, model, verdict) for (fw, model), verdict in verdicts.items()]
