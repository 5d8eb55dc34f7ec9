"""`servingbench run --resume DIR`: what an interrupted or partly failed study's folder already holds, and what
is left of it to run. A trial that finished stays as it is (its records are never rewritten); every other one is
run again under the same trial id."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from servingbench.analysis.stats import aggregate_cell
from servingbench.config import CAPACITY, REDACTED, Study, dump_study, load_study
from servingbench.errors import ServingbenchError
from servingbench.orchestrate.levels import planned_cells
from servingbench.results.schema import CellSummary, Summary, TrialSummary
from servingbench.results.store import ResultsDir, load_summary
from servingbench.results.tune_store import TUNE_FILE

STUDY_FILE = "study.yaml"
FINISHED = ("ok", "unsupported")  # a cell the resumed run decided; "failed" and "running" ones run again
INTERRUPTED = "interrupted before this cell finished"  # a cell's reason after Ctrl-C or SIGTERM


def resumable(directory: Path, study: str | None, overrides: dict[str, Any]) -> tuple[Study, Summary]:
    """The study to finish and its saved summary, or a one-line reason why DIR can't be resumed. Reads only.

    Without STUDY the study is DIR's own study.yaml (with any flags applied); a study given or changed by flags
    must resolve to the same study, so that the finished and the new trials measure the same thing."""
    if (directory / TUNE_FILE).exists():
        raise ServingbenchError(f"{directory} is a tune folder: --resume finishes `servingbench run` studies; "
                                "run the tune again")
    summary = load_summary(directory)
    saved_file = directory / STUDY_FILE
    if not saved_file.is_file():
        raise ServingbenchError(f"no {STUDY_FILE} in {directory}: the study it ran is unknown, so it can't be resumed")
    saved = load_study(str(saved_file))
    given = load_study(study or str(saved_file), overrides)
    differences = study_differences(saved, given, str(directory))
    if differences:
        raise ServingbenchError(f"cannot resume {directory} with a different study: {'; '.join(differences)}")
    if study is None and given.endpoint is not None and REDACTED in given.endpoint.headers.values():
        raise ServingbenchError(f"{saved_file} does not keep the endpoint's header values; give the study file "
                                f"too: servingbench run STUDY --resume {directory}")
    if given.tune is not None:
        raise ServingbenchError(f"{directory} ran a tune: --resume finishes `servingbench run` studies; "
                                "run the tune again")
    return given, summary


def study_differences(saved: Study, given: Study, where: str) -> list[str]:
    """Each key whose value differs, as "load.users: [1, 10] in <where>, [1, 5] now" (header values not
    compared: results never keep them)."""
    before, after = (_flat(yaml.safe_load(dump_study(s))) for s in (saved, given))
    return [f"{key}: {_shown(before, key)} in {where}, {_shown(after, key)} now"
            for key in sorted(before.keys() | after.keys()) if before.get(key, _ABSENT) != after.get(key, _ABSENT)]


_ABSENT = object()


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; lists and other values whole."""
    if isinstance(data, dict) and data:
        return {key: value for name, item in data.items() for key, value in _flat(item, f"{prefix}{name}.").items()}
    return {prefix.rstrip("."): data}


def _shown(values: dict[str, Any], key: str) -> str:
    return json.dumps(values[key]) if key in values else "(not set)"


def kept_trials(cell: CellSummary) -> list[TrialSummary]:
    """The trials a resumed run keeps: all of a finished cell's; of an unfinished one those that measured the
    server (a capacity search starts over: each probe depends on the ones before)."""
    if cell.status in FINISHED:
        return cell.repetitions
    if cell.scenario == CAPACITY:
        return []
    return [t for t in cell.repetitions if t.measured]


def prepare(results: ResultsDir, summary: Summary) -> list[Path]:
    """The saved summary down to the trials kept, saved, and the records files it no longer names removed (the
    partial file of the trial in progress when the run was killed, those of trials to run again). Returns them."""
    for cell in summary.cells:
        kept = kept_trials(cell)
        if kept != cell.repetitions:
            summary.put_cell(aggregate_cell(cell.model_copy(update={"repetitions": kept, "capacity": None})))
    summary.complete = False
    results.save_summary(summary)
    named = {results.path / t.records_file for c in summary.cells for t in c.repetitions}
    stale = sorted(set(results.requests_dir.glob("*.parquet")) - named)
    for path in stale:
        path.unlink()
    return stale


def cells_left(planned: list[CellSummary], summary: Summary) -> list[CellSummary]:
    """The planned cells the summary has not finished, each with the trials kept from before (none in a fresh
    run): those trials are not run again."""
    saved = {c.key: c for c in summary.cells}
    left = []
    for cell in planned:
        before = saved.get(cell.key)
        if before is None:
            left.append(cell)
        elif before.status not in FINISHED:
            left.append(cell.model_copy(update={"repetitions": before.repetitions}))
    return left


def unfinished_cells(study: Study, summary: Summary) -> int:
    """How many cells of the study are not finished yet (0: nothing to resume)."""
    return sum(len(cells_left(planned_cells(framework, model.name, study.load, pipeline), summary))
               for model in study.models for framework in study.frameworks for pipeline in study.pipeline)


def resume_note(cell: CellSummary, summary: Summary, repetitions: int) -> str:
    """What resuming does with an unfinished cell, in words (a failed one is retried, and says why it failed)."""
    before = next((c for c in summary.cells if c.key == cell.key), None)
    kept = len(cell.repetitions)
    if before is not None and before.status == "failed" and before.reason != INTERRUPTED:
        return f"retrying {cell.label}, which failed: {before.reason} ({kept} finished trial(s) kept)"
    return f"finishing {cell.label}: {kept} of {repetitions} trial(s) done before"
