"""Reading a server's metrics endpoint (shared by adapters that expose one)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request


def get_text(url: str, timeout_s: float = 5.0) -> str:
    """The body of a metrics page, or "" when the server does not answer (metrics are optional)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return ""


def get_json(url: str, timeout_s: float = 5.0) -> dict[str, float]:
    text = get_text(url, timeout_s)
    return {k: float(v) for k, v in json.loads(text).items()} if text else {}


def prometheus_counters(text: str, names: dict[str, str], labels: dict[str, str]) -> dict[str, float]:
    """Sum Prometheus samples named in `names` whose labels include `labels`, renamed by `names`.

    e.g. names={"ts_inference_requests_total": "requests_total"}, labels={"model_name": "resnet50"}.
    """
    found: dict[str, float] = {}
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        metric, _, rest = line.partition("{")
        if metric not in names:
            metric = line.split(" ", 1)[0]
            if metric not in names:
                continue
            label_text, value = "", line.rsplit(" ", 1)[-1]
        else:
            label_text, _, tail = rest.partition("}")
            value = tail.split()[0]
        if all(w in label_text for w in wanted):
            key = names[metric]
            found[key] = found.get(key, 0.0) + float(value)
    return found
