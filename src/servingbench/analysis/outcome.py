"""What makes a study's outcome a failure: cells that failed, servers that answered wrongly."""
from __future__ import annotations

from servingbench.pipeline import served_label
from servingbench.results.schema import Summary


def cell_failures(summary: Summary) -> list[str]:
    """One line per failed cell and per framework x model whose answers did not match the in-process model."""
    lines = [f"{c.label}: {c.reason or 'no reason recorded'}"
             for c in summary.cells if c.status == "failed"]
    wrong = {(served_label(c.framework, c.pipeline), c.model): c.correct.reason for c in summary.cells
             if c.status == "ok" and c.correct is not None and c.correct.ok is False}
    lines += [f"{framework} / {model}: wrong answers: {reason}" for (framework, model), reason in wrong.items()]
    return lines
