"""LoadGen's AccuracyOnly run: every sample once through the server, its answers scored by the task metric."""
from __future__ import annotations

from servingbench.adapters.base import Adapter
from servingbench.config import LoadSettings
from servingbench.load.loadgen import loadgen_plan, read_accuracy_log, run_loadgen
from servingbench.models.base import ModelSpec, Output, Sample
from servingbench.orchestrate.trials import Target
from servingbench.results.schema import Accuracy, Correctness
from servingbench.results.store import ResultsDir


def run_accuracy(results: ResultsDir, target: Target, adapter: Adapter, model: ModelSpec, samples: list[Sample],
                 references: dict[str, Output], load: LoadSettings) -> Accuracy:
    """`target.requests` are the samples' requests, in the same order."""
    tid = target.trial_id("accuracy", 1)
    log_dir = results.path / "loadgen" / tid
    plan = loadgen_plan(tid, target.base_url, target.requests, "single_stream", load,
                        results.requests_dir / f"{tid}.parquet", log_dir, accuracy=True)
    run_loadgen(plan, results.work_dir / "load")
    answers = read_accuracy_log(log_dir)
    served = [_decode(adapter, model, answers.get(i)) for i in range(len(samples))]
    score = model.score([references[s.name] for s in samples], served)
    return Accuracy(metric=score.metric, value=score.value, threshold=score.threshold,
                    higher_is_better=score.higher_is_better, ok=score.ok, samples=len(answers),
                    log_dir=str(log_dir.relative_to(results.path)))


def _decode(adapter: Adapter, model: ModelSpec, answer: bytes | None) -> Output | None:
    """A missing (failed) or undecodable answer scores as wrong."""
    if answer is None:
        return None
    try:
        return adapter.decode(model, 200, answer)
    except Exception:  # an undecodable answer off the wire is a wrong answer, not a crash
        return None


def with_accuracy(correct: Correctness | None, accuracy: Accuracy) -> Correctness:
    """The per-sample verdict joined with the accuracy run's: both must pass."""
    comparison = "<=" if not accuracy.higher_is_better else ">="
    text = (f"LoadGen accuracy run: {accuracy.metric} {accuracy.value:.4g} over {accuracy.samples} samples "
            f"({'passes' if accuracy.ok else 'fails'} {comparison} {accuracy.threshold:g})")
    if correct is None:
        return Correctness(ok=accuracy.ok, reason=text, samples_checked=accuracy.samples, accuracy=accuracy)
    ok = accuracy.ok if correct.ok is None else correct.ok and accuracy.ok
    return correct.model_copy(update={"ok": ok, "reason": f"{correct.reason}; {text}", "accuracy": accuracy})
