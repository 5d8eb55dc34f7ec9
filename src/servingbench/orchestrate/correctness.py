"""Before any load: does the served model answer what the model run in-process answers?"""
from __future__ import annotations

from servingbench.adapters.base import Adapter
from servingbench.errors import describe
from servingbench.load.transport import send_once
from servingbench.models.base import ModelSpec, Output, Sample
from servingbench.results.schema import Correctness


def check_correctness(adapter: Adapter, model: ModelSpec, samples: list[Sample], references: dict[str, Output],
                      base_url: str, timeout_s: float) -> Correctness:
    """Every sample once through the server, decoded and compared; the first mismatch is the reason."""
    for checked, sample in enumerate(samples):
        request = adapter.request(model, sample)
        status, body, error = send_once(base_url, request, timeout_s)
        if error is not None:
            snippet = body[:200].decode(errors="replace")
            return Correctness(ok=False, reason=f"sample {sample.name}: {error}" + (f": {snippet}" if snippet else ""),
                               samples_checked=checked)
        try:
            output = adapter.decode(model, status, body)
        except Exception as exc:  # noqa: BLE001 - an answer off the wire that can't be read is a wrong answer
            snippet = body[:120].decode(errors="replace")
            return Correctness(ok=False, samples_checked=checked + 1,
                               reason=f"sample {sample.name}: the {status} answer could not be decoded "
                                      f"({describe(exc)}): {snippet!r}")
        if output is None:
            return Correctness(ok=None, reason=f"{adapter.name} answers in its own format: not compared")
        verdict = model.compare(references[sample.name], output)
        if not verdict.ok:
            return Correctness(ok=False, reason=f"sample {sample.name}: {verdict.reason}", samples_checked=checked + 1)
    return Correctness(ok=True, reason="all samples match the in-process reference", samples_checked=len(samples))
