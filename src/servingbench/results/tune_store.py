"""tune.json in a tune folder: replaced atomically after every candidate, read back for the report."""
from __future__ import annotations

from pathlib import Path

from servingbench.results.store import ResultsDir, load_versioned, now_iso
from servingbench.results.tune_schema import TUNE_SCHEMA_VERSION, TuneSummary

TUNE_FILE = "tune.json"


def save_tune_summary(results: ResultsDir, summary: TuneSummary) -> Path:
    summary.updated_at = now_iso()
    return results.write_text(TUNE_FILE, summary.model_dump_json(indent=2) + "\n")


def load_tune_summary(path: Path) -> TuneSummary:
    """The tune.json of the tune folder `path`."""
    return load_versioned(path / TUNE_FILE, TuneSummary, TUNE_SCHEMA_VERSION, "a servingbench tune folder")
