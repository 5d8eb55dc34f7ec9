"""Does a served output match the in-process reference? Shared by the models of each task.

Served outputs come off the wire, so anything malformed is a mismatch, not a crash.
"""
from __future__ import annotations

from collections.abc import Sequence

from .base import Output, Verdict

MALFORMED = (KeyError, TypeError, ValueError, IndexError)


def compare_classification(expected: Output, actual: Output, tolerance: float) -> Verdict:
    """Same top-1 class and logits within `tolerance`, relative to the logits' scale (at least 1)."""
    try:
        want_top1, got_top1 = expected["top5"][0], actual["top5"][0]
        want, got = int(want_top1[0]), int(got_top1[0])
        want_label, got_label = want_top1[1], got_top1[1]
        want_logits = [float(x) for x in expected["logits"]]
        got_logits = [float(x) for x in actual["logits"]]
    except MALFORMED as error:
        return Verdict(False, f"malformed output: {error!r}")
    if want != got:
        return Verdict(False, f"top-1 class {got} ({got_label}), expected {want} ({want_label})")
    verdict = _close(want_logits, got_logits, tolerance, "logits")
    return Verdict(False, f"same top-1 class but {verdict.reason}") if not verdict.ok else verdict


def compare_values(expected: Output, actual: Output, key: str, tolerance: float) -> Verdict:
    """Same `shape` (where the outputs give one) and the values under `key` within `tolerance`."""
    try:
        want = [float(x) for x in expected[key]]
        got = [float(x) for x in actual[key]]
        want_shape, got_shape = expected.get("shape"), actual.get("shape")
    except MALFORMED as error:
        return Verdict(False, f"malformed output: {error!r}")
    except AttributeError as error:
        return Verdict(False, f"malformed output: {error!r}")
    if want_shape != got_shape:
        return Verdict(False, f"shape {got_shape}, expected {want_shape}")
    return _close(want, got, tolerance, key)


def _close(want: list[float], got: list[float], tolerance: float, what: str) -> Verdict:
    """Values within `tolerance` relative to their scale (at least 1)."""
    if len(want) != len(got):
        return Verdict(False, f"{len(got)} {what}, expected {len(want)}")
    diff = max((abs(a - b) for a, b in zip(want, got)), default=0.0)
    limit = tolerance * max(1.0, max((abs(x) for x in want), default=0.0))
    if diff > limit:
        return Verdict(False, f"max |{what} difference| {diff:.3g} > {limit:.3g}")
    return Verdict(True)


def compare_tokens(expected: Output, actual: Output, may_differ: float = 0.0) -> Verdict:
    """Identical token ids and text (greedy decoding leaves no room for drift in float32); below it, as many token
    ids as `may_differ` (a fraction of the positions) may differ."""
    try:
        want_ids, got_ids = [int(x) for x in expected["token_ids"]], [int(x) for x in actual["token_ids"]]
        want_text, got_text = str(expected["text"]), str(actual["text"])
    except MALFORMED as error:
        return Verdict(False, f"malformed output: {error!r}")
    if want_ids == got_ids and want_text == got_text:
        return Verdict(True)
    differing = sum(a != b for a, b in zip(want_ids, got_ids)) + abs(len(want_ids) - len(got_ids))
    if differing <= may_differ * max(len(want_ids), 1):
        return Verdict(True, f"{differing} of {len(want_ids)} token ids differ, within reduced precision's "
                             f"{may_differ:.0%}")
    if want_text == got_text:
        return Verdict(False, f"same text but token ids differ from position {_first_difference(want_ids, got_ids)}")
    # Long texts: show both from just before where they part.
    start = max(0, _first_difference(want_text, got_text) - 20)
    return Verdict(False, f"got {_excerpt(got_text, start)} ({len(got_ids)} tokens), "
                          f"expected {_excerpt(want_text, start)} ({len(want_ids)} tokens)")


def _first_difference(a: Sequence, b: Sequence) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _excerpt(text: str, start: int, length: int = 80) -> str:
    piece = text[start:start + length]
    return ("..." if start else "") + repr(piece) + ("..." if start + length < len(text) else "")
