"""`servingbench tune`: for each model x framework, search the framework's settings for the highest throughput
whose latency percentile stays under the bound, then re-measure the default and the winner with repetitions,
confirm each with a LoadGen Server run at the rate it reached, and write the winner in the framework's format.

The tune folder:
  tune.json                                   what was found (results/tune_schema.py), saved after every candidate
  candidates/<model>/<framework>/<id>/        each candidate's sweep: an ordinary results folder
  confirm/<model>/<framework>/<id>/           the re-measure of the default and the winner
  tuned/<model>/<framework>/                  the winner in the framework's own format, and study.yaml
"""
from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import servingbench
from servingbench.adapters import get_adapter
from servingbench.adapters.base import Adapter
from servingbench.analysis.cost import request_cost
from servingbench.analysis.stats import PERCENTILES, estimate
from servingbench.config import LoadSettings, Study, TuneSettings, dump_study, with_settings
from servingbench.devices import load_placed, place
from servingbench.display import Display
from servingbench.errors import ServingbenchError, UnsupportedModel, describe
from servingbench.models import get_model
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample
from servingbench.models.entry import ModelEntry
from servingbench.models.inprocess import reference_outputs
from servingbench.orchestrate.serving import Serving, serving
from servingbench.orchestrate.trials import run_cell, run_scenario_cell
from servingbench.outputs.tune_outputs import render_tune_outputs
from servingbench.results.environment import collect_environment
from servingbench.results.schema import CellSummary, Deployment, Summary
from servingbench.results.store import ResultsDir, now_iso
from servingbench.results.tune_schema import (
    DEFAULT_CANDIDATE,
    Candidate,
    Confirmation,
    TunedKnob,
    TuneResult,
    TuneSummary,
    WrittenConfig,
)
from servingbench.results.tune_store import save_tune_summary
from servingbench.tune.search import make_search
from servingbench.tune.space import (
    Settings,
    candidate_id,
    chosen_knobs,
    current_settings,
    detect_host,
    normalized,
    unknown_knob_names,
)
from servingbench.tune.sweep import best_step, percentile_ms, sweep


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "candidate"


class TuneRunner:
    def __init__(self, study: Study, out: Path, display: Display):
        self.study = study
        self.tune = study.tune or TuneSettings()
        self.display = display
        if study.load.latency_percentile not in PERCENTILES:
            raise ServingbenchError(f"tune holds p50, p90, p95 or p99 to the bound, not p{study.load.latency_percentile:g}")
        self.host = detect_host()
        # Every name resolved before any work, so a typo fails in a second, not after an hour.
        self.adapters: list[Adapter] = [get_adapter(name, study) for name in study.frameworks]
        self.models: list[tuple[ModelEntry, ModelSpec]] = [
            (entry, get_model(entry, study.size, study.weights, study.seed, study.server.dtype))
            for entry in study.models]
        self.placement = place(study.server.device, study.server.dtype)  # what every adapter found
        if self.tune.knobs:
            unknown = unknown_knob_names(self.tune.knobs, {a.name: a.knobs(self.host) for a in self.adapters})
            if unknown:
                raise ServingbenchError(f"no framework chosen has a setting named {', '.join(unknown)}; "
                                        f"theirs: {', '.join(sorted({k.name for a in self.adapters for k in a.knobs(self.host)}))}")
        self.results = ResultsDir.create(out)
        self.summary = TuneSummary(servingbench_version=servingbench.__version__, study=study.name,
                                   started_at=now_iso(), updated_at=now_iso(),
                                   latency_bound_ms=study.load.latency_bound_ms,
                                   percentile=study.load.latency_percentile, host_cores=self.host.cores,
                                   host_gpus=self.host.gpus)

    @property
    def bound(self) -> str:
        return f"p{self.study.load.latency_percentile:g} ≤ {self.study.load.latency_bound_ms:g} ms"

    def _save(self, result: TuneResult | None = None) -> None:
        if result is not None:
            self.summary.put(result)
        save_tune_summary(self.results, self.summary)

    def run(self) -> TuneSummary:
        self.results.write_text("study.yaml", dump_study(self.study))
        self.results.write_json("environment.json", collect_environment(
            self.study.server.threads, {a.name: a.container for a in self.adapters if a.container}, self.placement))
        self._save()
        for entry, model in self.models:
            self.display.stage(f"{model.name}: building the model ({model.size}, weights {model.weights}) on "
                               f"{self.placement.label}")
            loaded = load_placed(model, self.placement)
            samples = model.samples()
            references = reference_outputs(loaded, samples)
            for adapter in self.adapters:
                self._tune(adapter, entry, model, loaded, samples, references)
        self.summary.complete = True
        self._save()
        render_tune_outputs(self.results.path)
        return self.summary

    def interrupted(self) -> None:
        """After Ctrl-C: what finished stays, the framework x model that was running says so."""
        for result in self.summary.results:
            if result.status == "running":
                result.status, result.reason = "failed", "interrupted before its search finished"
        self._save()
        render_tune_outputs(self.results.path)

    # -- one framework x model ---------------------------------------------------------------------------------

    def _tune(self, adapter: Adapter, entry: ModelEntry, model: ModelSpec, loaded: LoadedModel,
              samples: list[Sample], references: dict[str, Output]) -> None:
        budget_s = self.tune.budget_minutes * 60
        result = TuneResult(framework=adapter.name, model=model.name, status="running", budget_s=budget_s)
        availability = adapter.availability()
        reason = (f"{adapter.name} is not available here: {availability.reason}" if not availability.ok
                  else adapter.unsupported_reason(model))
        if reason:
            self._save(result.model_copy(update={"status": "unsupported", "reason": reason}))
            return
        knobs = chosen_knobs(adapter, self.host, self.tune.knobs)
        default_settings = current_settings(adapter, knobs)
        # Knobs that don't matter in the default (a batch size with batching off) count at their pinned value.
        search = make_search(self.tune.search, knobs, self.host,
                             [normalized(default_settings, knobs, self.host) or default_settings], self.study.seed)
        result.search, result.space_size = search.kind, len(search.space)
        result.knobs = [TunedKnob(name=k.name, key=k.key, values=list(k.values)) for k in knobs]
        self._save(result)
        label = f"{model.name} · {adapter.name}"
        self.display.stage(f"{label}: tuning {', '.join(k.name for k in knobs) or 'nothing (no settings)'} "
                           f"({len(search.space)} candidates, {search.kind}) for the most throughput at {self.bound}, "
                           f"budget {self.tune.budget_minutes:g} min")
        start = time.monotonic()
        measure = dict(adapter=adapter, entry=entry, model=model, loaded=loaded, samples=samples,
                       references=references)
        default = self._measure(candidate_id=DEFAULT_CANDIDATE, settings={}, **measure)
        result.candidates.append(default)
        self._save(result)
        longest = default.wall_s
        while (settings := search.ask()) is not None:
            elapsed = time.monotonic() - start
            if elapsed + longest > budget_s:
                left = len([s for s in search.space if s not in search.measured])
                result.warnings.append(f"the budget ({self.tune.budget_minutes:g} min) ended the search with {left} "
                                       f"of {len(search.space)} candidates not measured")
                self.display.warn(f"{label}: {result.warnings[-1]}")
                break
            changed = {k: v for k, v in settings.items() if default_settings.get(k) != v}
            candidate = self._measure(candidate_id=candidate_id(changed, knobs), settings=changed, **measure)
            search.tell(settings, candidate.throughput_rps or 0.0)
            longest = max(longest, candidate.wall_s)
            result.candidates.append(candidate)
            self._save(result)
        result.search_wall_s = time.monotonic() - start
        self._conclude(result, measure)

    def _conclude(self, result: TuneResult, measure: dict[str, Any]) -> None:
        """The winner, default and winner re-measured, the winner's configuration written. `measure`: what
        `_measure` and `_confirm` take besides the candidate (adapter, model and its samples)."""
        held = [c for c in result.candidates if c.throughput_rps is not None and c.correct is not False]
        if not held:
            failures = "; ".join(f"{c.id}: {c.reason or 'no level held the bound'}" for c in result.candidates)
            self._save(result.model_copy(update={"status": "failed",
                                                 "reason": f"no configuration held {self.bound}: {failures}"}))
            return
        winner = max(held, key=lambda c: c.throughput_rps or 0.0)
        result.winner = winner.id
        self._save(result)
        default = result.candidates[0]
        result.default = self._confirm(default, result, write=winner is default, **measure)
        result.tuned = result.default if winner is default else self._confirm(winner, result, write=True, **measure)
        before, after = result.default.throughput_rps.mean, result.tuned.throughput_rps.mean
        result.gain_pct = (after / before - 1) * 100 if before and after is not None else None
        if result.gain_pct is not None and result.gain_pct < 0:
            result.warnings.append(f"the winner ({winner.id}) re-measured below the default: the search's single "
                                   "trials could not tell them apart; keep the default")
        result.status = "ok"
        self._save(result)
        gain = f"{result.gain_pct:+.0f}%" if result.gain_pct is not None else "gain unknown"
        self.display.stage(f"{result.model} · {result.framework}: tuned {winner.id} → "
                           f"{after or 0:.2f} req/s at {self.bound} ({gain} over the default)")

    # -- measuring ------------------------------------------------------------------------------------------------

    def _candidate_study(self, adapter: Adapter, entry: ModelEntry, settings: Settings, users: list[int]) -> Study:
        study = with_settings(self.study, settings, f"{adapter.name} settings {settings}")
        return study.model_copy(update={"frameworks": [adapter.name], "models": [entry], "tune": None,
                                        "load": study.load.model_copy(update={"users": users})})

    def _results_folder(self, kind: str, model: ModelSpec, adapter: Adapter, candidate: str,
                        study: Study) -> tuple[ResultsDir, Summary]:
        results = ResultsDir.create(self.results.path / kind / model.name / adapter.name / _slug(candidate))
        results.write_text("study.yaml", dump_study(study))
        summary = Summary(servingbench_version=servingbench.__version__, study=f"{study.name} {kind} {candidate}",
                          started_at=now_iso(), updated_at=now_iso())
        results.save_summary(summary)
        return results, summary

    @contextmanager
    def _served(self, study: Study, results: ResultsDir, summary: Summary, model: ModelSpec, loaded: LoadedModel,
                samples: list[Sample], references: dict[str, Output]) -> Iterator[tuple[Adapter, Serving]]:
        """The study's one framework serving the model, its deployment recorded in the folder's summary."""
        adapter = get_adapter(study.frameworks[0], study)

        def record(deployment: Deployment) -> None:
            summary.keep_deployment(deployment)
            results.save_summary(summary)

        with serving(adapter, model, loaded, samples, references, results.work_dir / adapter.name / model.name,
                     study.server.startup_timeout_s, study.load.request_timeout_s, record) as served:
            yield adapter, served

    def _measure(self, adapter: Adapter, entry: ModelEntry, model: ModelSpec, loaded: LoadedModel,
                 samples: list[Sample], references: dict[str, Output], candidate_id: str,
                 settings: dict[str, Any]) -> Candidate:
        """One candidate's sweep, in a results folder of its own; a candidate that fails is a result, not an end."""
        study = self._candidate_study(adapter, entry, settings, self.tune.users)
        results, summary = self._results_folder("candidates", model, adapter, candidate_id, study)
        self.display.stage(f"{model.name} · {adapter.name} · {candidate_id}: sweeping users "
                           f"{', '.join(map(str, self.tune.users))} until {self.bound} is crossed")
        candidate = Candidate(id=candidate_id, settings=settings, status="failed", wall_s=0.0,
                              results_dir=str(results.path.relative_to(self.results.path)))
        start = time.monotonic()
        try:
            with self._served(study, results, summary, model, loaded, samples, references) as (_, served):
                candidate.correct = served.correct.ok if served.correct else None
                if served.correct is not None and served.correct.ok is False:
                    candidate.reason = f"wrong answers: {served.correct.reason}"
                else:
                    candidate.steps = sweep(results, summary, served.target, study.load, self.tune.users,
                                            served.correct, served.client_preprocess_ms, self.display)
                    candidate.status = "ok"
        except UnsupportedModel as exc:
            candidate.reason = f"unsupported with these settings: {exc}"
        except Exception as exc:  # noqa: BLE001 - a configuration that does not start is a finding, not the end
            results.raise_if_full(exc, f"{model.name} · {adapter.name} · {candidate.id}'s files")
            candidate.reason = str(exc) if isinstance(exc, ServingbenchError) else f"internal error: {describe(exc)}"
        candidate.wall_s = time.monotonic() - start
        summary.complete = True
        results.save_summary(summary)
        if candidate.reason:
            self.display.warn(f"{model.name} · {adapter.name} · {candidate_id}: {candidate.reason}")
        best = best_step(candidate.steps)
        if best is not None:
            candidate.best_users, candidate.throughput_rps, candidate.latency_ms = (
                best.users, best.throughput_rps, best.latency_ms)
        return candidate

    def _confirm(self, candidate: Candidate, result: TuneResult, write: bool, adapter: Adapter, entry: ModelEntry,
                 model: ModelSpec, loaded: LoadedModel, samples: list[Sample],
                 references: dict[str, Output]) -> Confirmation:
        """`load.repetitions` trials at the candidate's best level (CIs), then LoadGen Server at the rate reached."""
        users = candidate.best_users or 1
        study = self._candidate_study(adapter, entry, candidate.settings, [users])
        results, summary = self._results_folder("confirm", model, adapter, candidate.id, study)
        load = study.load
        self.display.stage(f"{model.name} · {adapter.name} · {candidate.id}: re-measuring at {users} users, "
                           f"{load.repetitions} repetitions")
        confirmation = Confirmation(candidate=candidate.id, users=users,
                                    results_dir=str(results.path.relative_to(self.results.path)),
                                    throughput_rps=estimate([]), latency_ms=estimate([]))
        try:
            with self._served(study, results, summary, model, loaded, samples, references) as (served_adapter,
                                                                                               served):
                cell = run_cell(results, summary, CellSummary(framework=adapter.name, model=model.name, users=users,
                                                              status="running", correct=served.correct),
                                served.target, load, self.display)
                measured = [t for t in cell.repetitions if t.measured]
                confirmation.throughput_rps = estimate([t.throughput_rps for t in measured])
                confirmation.latency_ms = estimate([v for t in measured if (v := percentile_ms(
                    t.latency_ms, load.latency_percentile)) is not None])
                confirmation.cost = request_cost(measured, self.tune.price_per_core_hour, self.tune.price_per_gpu_hour)
                if write:
                    result.config = self._write_config(served_adapter, served, study, model, adapter.name)
                self._loadgen_confirmation(confirmation, results, summary, served, load)
        except Exception as exc:  # noqa: BLE001 - kept as the reason; the search's own figures stand
            results.raise_if_full(exc, f"{model.name} · {adapter.name} · {candidate.id}'s files")
            confirmation.reason = str(exc) if isinstance(exc, ServingbenchError) else f"internal error: {describe(exc)}"
            self.display.warn(f"{model.name} · {adapter.name} · {candidate.id}: re-measure failed: {confirmation.reason}")
        summary.complete = True
        results.save_summary(summary)
        return confirmation

    def _loadgen_confirmation(self, confirmation: Confirmation, results: ResultsDir, summary: Summary,
                              served: Serving, load: LoadSettings) -> None:
        rate = confirmation.throughput_rps.mean
        if not rate:
            confirmation.reason = "no throughput to confirm with LoadGen"
            return
        confirmation.loadgen_target_qps = rate
        cell = CellSummary(framework=served.target.framework, model=served.target.model, scenario="server", users=0,
                           status="running", target_qps=rate, latency_bound_ms=load.latency_bound_ms,
                           latency_percentile=load.latency_percentile)
        cell = run_scenario_cell(results, summary, cell, served.target, load.model_copy(update={"repetitions": 1}),
                                 self.display)
        verdict = cell.repetitions[-1].loadgen if cell.repetitions else None
        if verdict is None:
            confirmation.reason = f"the LoadGen run failed: {cell.reason}"
            return
        confirmation.loadgen_valid, confirmation.loadgen_latency_ms = verdict.valid, verdict.bounded_latency_ms
        confirmation.loadgen_unmet = [what for what, met in (
            ("the latency bound", verdict.performance_constraints_satisfied),
            ("early stopping (too few queries to certify the percentile)", verdict.early_stopping_satisfied)) if not met]

    def _write_config(self, adapter: Adapter, served: Serving, study: Study, model: ModelSpec,
                      framework: str) -> WrittenConfig:
        folder = self.results.path / "tuned" / model.name / framework
        folder.mkdir(parents=True, exist_ok=True)
        written = adapter.write_config(served.live.artifact, served.live.launch, served.live.run_dir, folder)
        study_file = self.results.write_text(f"tuned/{model.name}/{framework}/study.yaml", dump_study(
            study.model_copy(update={"name": f"{self.study.name}-tuned-{framework}-{model.name}"})))
        return WrittenConfig(folder=str(folder.relative_to(self.results.path)),
                             files=[str(Path(f).relative_to(folder)) for f in written.files],
                             command=written.command, study=str(study_file.relative_to(self.results.path)))
