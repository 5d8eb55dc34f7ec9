"""Where generated artefacts live (built random models, speech samples, tokenizer assets).

Entries are written with servingbench.atomic, so a later run never trusts a half-written one.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$SERVINGBENCH_CACHE`, else `~/.cache/servingbench`."""
    configured = os.environ.get("SERVINGBENCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "servingbench"
