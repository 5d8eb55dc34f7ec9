"""`pip install servingbench` without extras: the core (load, report, compare, list) works with no torch,
transformers or TensorFlow, and `run` says which extra models need."""
from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import start_delay_server
from servingbench.results.store import load_summary

REPO = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/simple/pip/"


def _pypi_reachable() -> bool:
    try:
        with urllib.request.urlopen(PYPI, timeout=10):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _run(*argv: str | Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _light_venv(tmp_path: Path) -> Path:
    """A fresh virtual environment (no system site packages) with servingbench installed from a copy of the
    repository (so the build leaves nothing in the checkout), no extras. Returns its bin folder."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = _run(venv / "bin" / "python", "-m", "pip", "install", "-q", source, cwd=tmp_path, timeout=900)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        if not _pypi_reachable():
            pytest.skip(f"PyPI ({PYPI}) is unreachable and pip could not install from its cache: {last}")
        pytest.fail(f"pip install {source} failed: {done.stderr[-2000:]}")
    return venv / "bin"


def test_core_install_loads_and_reports_without_torch(tmp_path):
    bin_dir = _light_venv(tmp_path)
    for heavy in ("torch", "transformers", "tensorflow"):
        done = _run(bin_dir / "python", "-c", f"import {heavy}", cwd=tmp_path, timeout=60)
        assert done.returncode != 0 and f"No module named '{heavy}'" in done.stderr

    proc, url = start_delay_server(tmp_path, 5)
    try:
        done = _run(bin_dir / "servingbench", "load", f"{url}/infer", "--users", "1", "--duration", "1",
                    "--warmup", "0.5", "--out", "light", cwd=tmp_path, timeout=180)
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr
    (cell,) = load_summary(tmp_path / "light").cells
    assert cell.status == "ok" and cell.requests > 20 and cell.failed == 0

    (tmp_path / "light" / "report.html").unlink()
    done = _run(bin_dir / "servingbench", "report", "light", cwd=tmp_path, timeout=180)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "light" / "report.html").is_file()

    done = _run(bin_dir / "servingbench", "list", cwd=tmp_path, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "endpoint" in done.stdout and "resnet50" in done.stdout

    done = _run(bin_dir / "servingbench", "run", "smoke", "--out", "run", cwd=tmp_path, timeout=180)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "servingbench: error: models need `pip install 'servingbench[models]'` (no module named 'torch' here)"]
