"""Task accuracy of served answers over a sample set, scored against the in-process model's answers.

The in-process outputs stand in for labels: a correct deployment scores perfectly (top-1 agreement
1, WER 0, ROUGE-L 1); drift from precision, preprocessing or a broken export shows as a lower score.
"""
from __future__ import annotations

from .base import Output, Score
from .compare import MALFORMED


def _texts(outputs: list[Output | None]) -> list[str]:
    texts = []
    for output in outputs:
        try:
            texts.append(str(output["text"]))  # type: ignore[index]
        except MALFORMED:
            texts.append("")  # a malformed answer scores as an empty one
    return texts


def top1_agreement(references: list[Output], served: list[Output | None]) -> Score:
    def top1(output: Output | None) -> int | None:
        try:
            return int(output["top5"][0][0])  # type: ignore[index]
        except MALFORMED:
            return None

    agree = sum(top1(r) == top1(s) for r, s in zip(references, served))
    return Score("top1_agreement", agree / len(references), 0.99, higher_is_better=True)


def word_error_rate(references: list[Output], served: list[Output | None]) -> Score:
    """Corpus WER (jiwer); transcripts with no words (random weights) count as matching if both are empty."""
    import jiwer

    pairs = [(r.strip(), s.strip()) for r, s in zip(_texts(references), _texts(served))]
    worded = [(r, s) for r, s in pairs if r]
    errors_empty = sum(1 for r, s in pairs if not r and s)
    total_words = sum(len(r.split()) for r, _ in worded)
    errors = jiwer.process_words([r for r, _ in worded], [s for _, s in worded]) if worded else None
    wrong = (errors.substitutions + errors.deletions + errors.insertions if errors else 0) + errors_empty
    return Score("wer", wrong / max(total_words, 1), 0.01, higher_is_better=False)


def rouge_l(references: list[Output], served: list[Output | None]) -> Score:
    """Mean ROUGE-L F1 (rouge-score); two empty summaries agree perfectly."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    values = [1.0 if not r.strip() and not s.strip() else scorer.score(r, s)["rougeL"].fmeasure
              for r, s in zip(_texts(references), _texts(served))]
    return Score("rouge_l", sum(values) / len(values), 0.99, higher_is_better=True)


def values_agreement(key: str, tolerance: float):
    """A score: the share of served outputs whose values under `key` match the reference's within `tolerance`."""
    from .compare import compare_values

    def agreement(references: list[Output], served: list[Output | None]) -> Score:
        agree = sum(s is not None and compare_values(r, s, key, tolerance).ok for r, s in zip(references, served))
        return Score(f"{key}_agreement", agree / len(references), 0.99, higher_is_better=True)

    return agreement
