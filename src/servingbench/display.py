"""What a person sees during a run: stages, a live bar per trial, one line per result, a final table."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from servingbench.analysis.slo import observed_text
from servingbench.pipeline import served_label
from servingbench.results.schema import CellSummary, GateVerdict, Summary, TrialSummary
from servingbench.results.tables import ci_text
from servingbench.results.tune_schema import Confirmation, TuneSummary

TrialProgress = Callable[[dict], None]


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class Display:
    def __init__(self, console: Console | None = None):
        # soft_wrap: result lines stay whole in CI logs and pipes instead of folding at 80 columns.
        self.console = console or Console(stderr=True, soft_wrap=True)

    def stage(self, text: str) -> None:
        # escape: names and reasons come from users and servers; a `[/x]` in them is text, not rich markup
        self.console.print(f"[bold cyan]•[/] {escape(text)}", highlight=False)

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)

    @contextmanager
    def trial(self, label: str, total_s: float) -> Iterator[TrialProgress]:
        """A live bar over the trial's expected length, showing requests recorded so far."""
        columns = (TextColumn("  {task.description}"), BarColumn(), TextColumn("{task.fields[done]} requests"),
                   TimeElapsedColumn())
        # A live bar only on a terminal; logs and pipes get the one-line result per trial.
        with Progress(*columns, console=self.console, transient=True, disable=not self.console.is_terminal) as bar:
            task = bar.add_task(label, total=total_s, done=0)
            start = time.monotonic()
            waiting_said = False

            def update(progress: dict) -> None:
                nonlocal waiting_said
                description = label
                if "expected" in progress:  # a distributed trial's master waiting for its load workers
                    description = f"{label} · load workers {progress['connected']}/{progress['expected']}"
                    if not waiting_said:
                        self.console.print(f"  waiting for {progress['expected']} load workers at {progress['master']}"
                                           f" (on other hosts: servingbench worker --master HOST:PORT)",
                                           highlight=False)
                        waiting_said = True
                bar.update(task, completed=min(time.monotonic() - start, total_s), description=description,
                           done=progress.get("done", 0))

            yield update

    def trial_done(self, label: str, trial: TrialSummary) -> None:
        lat = trial.latency_ms
        self.console.print(
            f"  {escape(label)}: {trial.throughput_rps:.2f} req/s, p50 {_fmt(lat and lat.p50)} ms, "
            f"p99 {_fmt(lat and lat.p99)} ms, {trial.failed} failed", highlight=False)
        for warning in trial.warnings:
            self.warn(warning)

    def cell_not_run(self, cell: CellSummary) -> None:
        served = served_label(cell.framework, cell.pipeline)
        self.console.print(f"  [red]{escape(f'{served} / {cell.model}: {cell.status}')}[/]: {escape(cell.reason)}",
                           highlight=False)
        if cell.log_tail:
            self.console.print(cell.log_tail, style="dim", markup=False, highlight=False)

    def final(self, summary: Summary) -> None:
        for model in dict.fromkeys(c.model for c in summary.cells):
            cells = [c for c in summary.cells if c.model == model]
            levels = list(dict.fromkeys(c.level for c in sorted(cells, key=lambda c: (c.scenario != "closed", c.users))))
            table = Table(title=f"{escape(model)}: throughput req/s (p50 / p99 ms)", title_justify="left")
            table.add_column("framework")
            for level in levels:
                table.add_column(escape(level), justify="right")
            by_key = {(served_label(c.framework, c.pipeline), c.level): c for c in cells}
            for fw in dict.fromkeys(served_label(c.framework, c.pipeline) for c in cells):
                table.add_row(escape(fw), *(escape(_cell_text(by_key.get((fw, level)))) for level in levels))
            self.console.print(table)
            for cell in (c for c in cells if c.slo):
                self.console.print(_slo_line(cell), highlight=False, soft_wrap=True)  # whole, however many gates
        info = [m for m in summary.models if m.inprocess_latency_ms]
        if info:
            self.console.print("in-process latency (the floor for any server): " + ", ".join(
                f"{escape(m.name)} p50 {m.inprocess_latency_ms.p50:.1f} ms" for m in info), highlight=False)
        devices = sorted({c.device for c in summary.cells if c.device})
        if devices:  # where every cell ran, also when `auto` chose it
            self.console.print(f"device: {escape(', '.join(devices))}", highlight=False)

    def tune_final(self, summary: TuneSummary) -> None:
        """Per model: default vs tuned throughput at the bound, the winning settings and the gain."""
        bound = f"p{summary.percentile:g} ≤ {summary.latency_bound_ms:g} ms"
        for model in dict.fromkeys(r.model for r in summary.results):
            table = Table(title=f"{escape(model)}: req/s at {bound}, default vs tuned", title_justify="left")
            for column in ("framework", "default", "tuned", "gain", "settings"):
                table.add_column(column, justify="left" if column in ("framework", "settings") else "right")
            for result in (r for r in summary.results if r.model == model):
                if result.status != "ok":
                    table.add_row(escape(result.framework), result.status, "", "", escape(result.reason[:80]))
                    continue
                winner = next(c for c in result.candidates if c.id == result.winner)
                table.add_row(escape(result.framework), _estimate_text(result.default), _estimate_text(result.tuned),
                              "-" if result.gain_pct is None else f"{result.gain_pct:+.0f}%",
                              escape(" ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in winner.settings.items())
                                     or "default"))
            self.console.print(table)


def _estimate_text(confirmation: Confirmation | None) -> str:
    return ci_text(confirmation.throughput_rps if confirmation else None, missing="-")


def _verdict_text(verdict: GateVerdict) -> str:
    if verdict.passed is None:  # the reason is in summary.json and report.html; here it would crowd the line
        return f"{escape(verdict.gate)} n.a."
    mark = "[green]✓[/]" if verdict.passed else "[red]✗[/]"
    return f"{escape(verdict.gate)} {mark} {observed_text(verdict.observed)}"


def _slo_line(cell: CellSummary) -> str:
    """E.g. "SLO torchserve / 10 users: p99_ms<=200 ✓ 180.2; throughput_rps>=50 ✗ 31.0"."""
    return f"SLO {escape(f'{cell.framework} / {cell.level}')}: " + "; ".join(map(_verdict_text, cell.slo))


def _cell_text(cell: CellSummary | None) -> str:
    if cell is None:
        return ""
    if cell.status != "ok":
        return cell.status
    if cell.capacity:
        found = cell.capacity.max_qps
        return "none valid" if found is None else f"max {found:.2f} qps"
    tp = cell.throughput_rps.mean if cell.throughput_rps else None
    return f"{_fmt(tp, 2)} ({_fmt(cell.latency_ms.get('p50'))} / {_fmt(cell.latency_ms.get('p99'))})"
