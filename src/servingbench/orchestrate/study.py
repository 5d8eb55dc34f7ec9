"""A whole study: for each model, build it once, then package, launch, check and load each framework."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import servingbench
from servingbench.adapters import get_adapter
from servingbench.adapters.base import Adapter
from servingbench.analysis.slo import apply_gates, parse_gates
from servingbench.analysis.stats import latency_summary
from servingbench.config import Study, dump_study
from servingbench.devices import load_placed, place
from servingbench.display import Display
from servingbench.errors import ServingbenchError, UnsupportedModel, describe
from servingbench.models import get_model
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample
from servingbench.models.inprocess import measure_latency_ms, reference_outputs
from servingbench.orchestrate.accuracy import run_accuracy, with_accuracy
from servingbench.orchestrate.levels import planned_cells, run_planned_cell
from servingbench.orchestrate.resume import INTERRUPTED, cells_left, prepare, resume_note
from servingbench.orchestrate.serving import serving
from servingbench.outputs.render import render_outputs
from servingbench.pipeline import served_id, served_label
from servingbench.results.environment import collect_environment
from servingbench.results.schema import CellSummary, Deployment, ModelInfo, Summary
from servingbench.results.store import ResultsDir, now_iso


class StudyRunner:
    def __init__(self, study: Study, out: Path, display: Display, previous: Summary | None = None):
        """`previous`: the saved summary of the study in `out`, to finish it (`run --resume`)."""
        self.study = study
        self.display = display
        # Resolve every name before any work, so a typo fails in a second, not after an hour.
        self.adapters: list[Adapter] = [get_adapter(name, study, pipeline) for name in study.frameworks
                                        for pipeline in study.pipeline]
        self.models: list[ModelSpec] = [get_model(name, study.size, study.weights, study.seed, study.server.dtype)
                                        for name in study.models]
        self.placement = place(study.server.device, study.server.dtype)  # what every adapter found
        self.results = ResultsDir.create(out)
        self.resuming = previous is not None
        self.summary = previous or Summary(servingbench_version=servingbench.__version__, study=study.name,
                                           started_at=now_iso(), updated_at=now_iso())

    def run(self) -> Summary:
        if self.resuming:  # study.yaml and environment.json stay those of the first run
            self.summary.resumed_at.append(now_iso())
            for stale in prepare(self.results, self.summary):
                self.display.stage(f"removed {stale.name}: a trial that did not finish, to run again")
        else:
            self.results.write_text("study.yaml", dump_study(self.study))
            self.results.write_json("environment.json", collect_environment(
                self.study.server.threads, {a.name: a.container for a in self.adapters if a.container},
                self.placement))
            self.results.save_summary(self.summary)
        torch.set_num_threads(self.study.server.threads)
        for model in self.models:
            self._run_model(model)
        self.summary.complete = True
        self.summary = apply_gates(self.summary, parse_gates(self.study.slo))
        self.results.save_summary(self.summary)
        render_outputs(self.results.path)
        return self.summary

    def _run_model(self, model: ModelSpec) -> None:
        work = [(adapter, cells_left(planned_cells(adapter.name, model.name, self.study.load, adapter.pipeline),
                                     self.summary)) for adapter in self.adapters]
        if not any(cells for _, cells in work):
            return self.display.stage(f"{model.name}: every cell finished in the run resumed")
        self.display.stage(f"{model.name}: building the model ({model.size}, weights {model.weights}) on "
                           f"{self.placement.label}")
        loaded = load_placed(model, self.placement)
        samples = model.samples()
        references = reference_outputs(loaded, samples)
        inprocess = measure_latency_ms(loaded, samples, self.study.inprocess_iterations, warmup=2) \
            if self.study.inprocess_iterations else []
        self.summary.models = [m for m in self.summary.models if m.name != model.name]  # resumed: measured anew
        self.summary.models.append(ModelInfo(name=model.name, task=model.task, size=model.size,
                                             weights=str(model.weights), device=self.placement.label,
                                             inprocess_latency_ms=latency_summary(np.asarray(inprocess))))
        self.results.save_summary(self.summary)
        for adapter, cells in work:
            if cells:
                self._run_framework(adapter, model, cells, loaded, samples, references)

    def _mark_running(self, status: str, reason: str, log_tail: str = "") -> None:
        """Cells still running (a whole framework x model, or the rest of it) end with this status."""
        ended = [c.model_copy(update={"status": status, "reason": reason, "log_tail": log_tail})
                 for c in self.summary.cells if c.status == "running"]
        for cell in ended:
            self.summary.put_cell(cell)
        self.results.save_summary(self.summary)
        if ended:
            self.display.cell_not_run(ended[0])

    def interrupted(self) -> None:
        """After Ctrl-C: what finished stays valid, what was running says so, tables are re-rendered."""
        self._mark_running("failed", INTERRUPTED)
        render_outputs(self.results.path)

    def _run_framework(self, adapter: Adapter, model: ModelSpec, cells: list[CellSummary], loaded: LoadedModel,
                       samples: list[Sample], references: dict[str, Output]) -> None:
        """`cells`: those left to run, with any trials a resumed run keeps."""
        # Deployed again: a resumed run's record of this server replaces the earlier one.
        served = (adapter.name, model.name, adapter.pipeline)
        self.summary.deployments = [d for d in self.summary.deployments if (d.framework, d.model, d.pipeline) != served]
        cells = [cell.model_copy(update={"device": self.placement.label}) for cell in cells]
        for cell in cells:
            if self.resuming:
                self.display.stage(resume_note(cell, self.summary, self.study.load.repetitions))
            self.summary.put_cell(cell)
        availability = adapter.availability()
        if not availability.ok:
            return self._mark_running("unsupported", f"{adapter.name} is not available here: {availability.reason}")
        reason = adapter.pipeline_problem() or adapter.unsupported_reason(model)
        if reason:
            return self._mark_running("unsupported", reason)
        self.display.stage(f"{model.name} · {served_label(adapter.name, adapter.pipeline)}: packaging and starting "
                           f"the server on {self.placement.label}")
        try:
            self._deploy_and_load(adapter, model, loaded, samples, references, cells)
        except UnsupportedModel as exc:  # found while packaging, e.g. an export that can't exist
            self._mark_running("unsupported", str(exc))
        except Exception as exc:  # noqa: BLE001 - one framework's failure must not end the study, a full disk does
            self.results.raise_if_full(exc, f"{model.name} · {adapter.name}'s files")
            reason = str(exc) if isinstance(exc, ServingbenchError) else f"internal error: {describe(exc)}"
            for deployment in self.summary.deployments:
                if (deployment.framework, deployment.model, deployment.pipeline) == served \
                        and deployment.status == "failed":
                    deployment.reason = reason
            self._mark_running("failed", reason, getattr(exc, "log_tail", ""))

    def _record_deployment(self, deployment: Deployment) -> None:
        self.summary.keep_deployment(deployment)
        self.results.save_summary(self.summary)

    def _deploy_and_load(self, adapter: Adapter, model: ModelSpec, loaded: LoadedModel, samples: list[Sample],
                         references: dict[str, Output], cells: list[CellSummary]) -> None:
        """Package, launch, check correctness, then every load level."""
        run_dir = self.results.work_dir / served_id(adapter.name, adapter.pipeline) / model.name
        check_timeout_s = self.study.load.request_timeout_s if self.study.check_correctness else None
        with serving(adapter, model, loaded, samples, references, run_dir, self.study.server.startup_timeout_s,
                     check_timeout_s, self._record_deployment) as served:
            correct, target = served.correct, served.target
            # An answer in the framework's own format (ok None) cannot be scored either.
            if self.study.accuracy and (correct is None or correct.ok is not None):
                self.display.stage(f"{model.name} · {adapter.name}: LoadGen accuracy run")
                accuracy = run_accuracy(self.results, target, adapter, model, samples, references, self.study.load)
                correct = with_accuracy(correct, accuracy)
            if correct is not None:
                self.display.stage(f"{model.name} · {adapter.name}: correct = {correct.ok} ({correct.reason})")
            for cell in cells:
                cell = cell.model_copy(update={"correct": correct, "client_preprocess_ms": served.client_preprocess_ms})
                run_planned_cell(self.results, self.summary, cell, target, self.study.load, self.display)
