"""One study from many: the results folders of separate jobs (SLURM's, one per framework x model) under
DIR/jobs/<name>/, merged into DIR as if one run had measured them all. Cells are taken as measured, never
recomputed; the paths they hold (request records, telemetry, LoadGen logs) are made relative to DIR."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import servingbench
from servingbench.errors import ServingbenchError
from servingbench.results.schema import CellSummary, Summary, TrialSummary
from servingbench.results.store import SUMMARY, ResultsDir, load_summary

JOB_FOLDERS = "jobs"
ENVIRONMENT = "environment.json"


@dataclass
class Merged:
    summary: Summary
    jobs: list[str] = field(default_factory=list)  # the jobs whose cells it holds
    without_results: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        lines = []
        if self.without_results:
            lines.append(f"no results yet (queued, running, or failed before its first cell): "
                         f"{', '.join(self.without_results)}")
        if self.unfinished:
            lines.append(f"not finished (still running, or stopped early): {', '.join(self.unfinished)}; "
                         "their finished cells are included")
        return lines


def has_job_folders(path: Path) -> bool:
    return (path / JOB_FOLDERS).is_dir()


def _relocated_trial(trial: TrialSummary, prefix: str) -> TrialSummary:
    def moved(relative: str | None) -> str | None:
        return None if relative is None else f"{prefix}/{relative}"

    return trial.model_copy(update={"records_file": moved(trial.records_file),
                                    "telemetry_file": moved(trial.telemetry_file),
                                    "loadgen_log_dir": moved(trial.loadgen_log_dir)})


def _relocated_cell(cell: CellSummary, prefix: str) -> CellSummary:
    """The cell with every file it names seen from the merged folder: `prefix` is the job folder's path in it."""
    update: dict[str, object] = {"repetitions": [_relocated_trial(t, prefix) for t in cell.repetitions]}
    if cell.correct and cell.correct.accuracy and cell.correct.accuracy.log_dir:
        accuracy = cell.correct.accuracy.model_copy(update={"log_dir": f"{prefix}/{cell.correct.accuracy.log_dir}"})
        update["correct"] = cell.correct.model_copy(update={"accuracy": accuracy})
    return cell.model_copy(update=update)


def merge_jobs(path: Path) -> Merged:
    """The summary of every DIR/jobs/*/ that has one, in job-name order; jobs with none, or an unfinished one,
    are named in the result's warnings."""
    folders = sorted(p for p in (path / JOB_FOLDERS).iterdir() if p.is_dir())
    done = [p for p in folders if (p / SUMMARY).is_file()]
    if not done:
        names = ", ".join(p.name for p in folders) or "none"
        raise ServingbenchError(f"no job under {path / JOB_FOLDERS} has results yet (jobs: {names})")
    summaries = {p.name: load_summary(p) for p in done}
    merged = Summary(servingbench_version=servingbench.__version__, study=next(iter(summaries.values())).study,
                     started_at=min(s.started_at for s in summaries.values()), updated_at="",
                     complete=len(done) == len(folders) and all(s.complete for s in summaries.values()))
    for name, summary in summaries.items():
        prefix = f"{JOB_FOLDERS}/{name}"
        known = {m.name for m in merged.models}
        merged.models += [m for m in summary.models if m.name not in known]
        merged.deployments += summary.deployments
        for cell in summary.cells:
            merged.put_cell(_relocated_cell(cell, prefix))
    return Merged(summary=merged, jobs=list(summaries),
                  without_results=[p.name for p in folders if p not in done],
                  unfinished=[name for name, s in summaries.items() if not s.complete])


def write_merged(path: Path) -> Merged:
    """DIR/summary.json from DIR/jobs/*/, DIR/environment.json with each job's environment (jobs may run on
    different nodes), and DIR/study.yaml from the first job when DIR has none."""
    merged = merge_jobs(path)
    results = ResultsDir(path)
    environments = {name: json.loads(env.read_text()) for name in merged.jobs
                    if (env := path / JOB_FOLDERS / name / ENVIRONMENT).is_file()}
    if environments:
        results.write_json(ENVIRONMENT, {"jobs": environments})
    first_study = path / JOB_FOLDERS / merged.jobs[0] / "study.yaml"
    if not (path / "study.yaml").is_file() and first_study.is_file():
        shutil.copyfile(first_study, path / "study.yaml")
    results.save_summary(merged.summary)
    return merged
