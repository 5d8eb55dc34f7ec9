"""Reading a server's metrics endpoint (shared by adapters that expose one)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from servingbench.errors import MetricsUnavailable


def get_text(url: str, timeout_s: float = 5.0) -> str:
    """The body of a metrics page, or "" when the server does not answer (metrics are optional)."""
    try:
        return _read(url, timeout_s)
    except (urllib.error.URLError, OSError):
        return ""


def _read(url: str, timeout_s: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return resp.read().decode(errors="replace")


def scrape_totals(url: str, timeout_s: float = 5.0) -> dict[str, float]:
    """Every counter and histogram (or summary) total of any Prometheus page, by name: what `--metrics-url` reads.

    Raises MetricsUnavailable when the page does not answer or is not Prometheus text."""
    try:
        return prometheus_totals(_read(url, timeout_s))
    except (urllib.error.URLError, OSError) as exc:
        raise MetricsUnavailable(f"metrics URL {url} did not answer: {getattr(exc, 'reason', exc)}") from None
    except ValueError as exc:  # the parser's error for a line that is not Prometheus text
        raise MetricsUnavailable(f"metrics URL {url} is not Prometheus text: {exc}") from None


def prometheus_totals(text: str) -> dict[str, float]:
    """Counters (`<name>_total`) and histograms' and summaries' `<name>_sum` and `<name>_count`, each summed over
    its label sets; gauges, buckets and quantiles are left out (their difference over a trial means nothing)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.type == "counter" and sample.name == f"{family.name}_total" or \
                    family.type in ("histogram", "summary") and sample.name in (f"{family.name}_sum",
                                                                                  f"{family.name}_count"):
                found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def get_json(url: str, timeout_s: float = 5.0) -> dict[str, float]:
    text = get_text(url, timeout_s)
    return {k: float(v) for k, v in json.loads(text).items()} if text else {}


def prometheus_counters(text: str, names: dict[str, str], labels: dict[str, str]) -> dict[str, float]:
    """Sum Prometheus samples named in `names` whose labels include `labels` exactly, renamed by `names`.

    e.g. names={"ts_inference_requests_total": "requests_total"}, labels={"model_name": "resnet50"}.
    A counter may be named with or without `_total`, whichever way the server's text spells it.
    """
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = next((n for n in _sample_names(family, sample) if n in names), None)
            if name is not None and labels.items() <= sample.labels.items():
                found[names[name]] = found.get(names[name], 0.0) + sample.value
    return found


def _sample_names(family: Metric, sample: Sample) -> tuple[str, ...]:
    """The names a sample can have had in the text. The parser gives every counter sample the OpenMetrics
    `_total` suffix: Triton's `nv_inference_request_success` arrives as `nv_inference_request_success_total`."""
    if family.type == "counter" and sample.name == f"{family.name}_total":
        return sample.name, family.name
    return (sample.name,)
