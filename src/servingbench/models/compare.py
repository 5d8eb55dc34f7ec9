"""Does a served output match the in-process reference? Shared by the models of each task.

Served outputs come off the wire, so anything malformed is a mismatch, not a crash.
"""
from __future__ import annotations

from .base import Output, Verdict

MALFORMED = (KeyError, TypeError, ValueError, IndexError)


def compare_classification(expected: Output, actual: Output, tolerance: float) -> Verdict:
    """Same top-1 class and logits within `tolerance`, relative to the logits' scale (at least 1)."""
    try:
        want, got = int(expected["top5"][0][0]), int(actual["top5"][0][0])
        want_logits = [float(x) for x in expected["logits"]]
        got_logits = [float(x) for x in actual["logits"]]
    except MALFORMED as error:
        return Verdict(False, f"malformed output: {error!r}")
    if want != got:
        return Verdict(False, f"top-1 class {got} ({actual['top5'][0][1]}), expected {want} ({expected['top5'][0][1]})")
    if len(want_logits) != len(got_logits):
        return Verdict(False, f"{len(got_logits)} logits, expected {len(want_logits)}")
    diff = max((abs(a - b) for a, b in zip(want_logits, got_logits)), default=0.0)
    limit = tolerance * max(1.0, max((abs(x) for x in want_logits), default=0.0))
    if diff > limit:
        return Verdict(False, f"same top-1 class but max |logit diff| {diff:.3g} > {limit:.3g}")
    return Verdict(True)


def compare_tokens(expected: Output, actual: Output) -> Verdict:
    """Identical token ids and text (greedy decoding leaves no room for drift)."""
    try:
        want_ids, got_ids = [int(x) for x in expected["token_ids"]], [int(x) for x in actual["token_ids"]]
        want_text, got_text = str(expected["text"]), str(actual["text"])
    except MALFORMED as error:
        return Verdict(False, f"malformed output: {error!r}")
    if want_ids == got_ids and want_text == got_text:
        return Verdict(True)
    if want_text == got_text:
        position = next((i for i, (a, b) in enumerate(zip(want_ids, got_ids)) if a != b), min(len(want_ids), len(got_ids)))
        return Verdict(False, f"same text but token ids differ from position {position}")
    return Verdict(False, f"got {_clip(got_text)} ({len(got_ids)} tokens), "
                          f"expected {_clip(want_text)} ({len(want_ids)} tokens)")


def _clip(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
