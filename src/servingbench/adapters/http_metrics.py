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
