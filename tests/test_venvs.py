"""Layered framework environments: the layer's pins win, servingbench's own packages stay reachable."""
import subprocess

import pytest

from conftest import run_cli
from servingbench.launch import venvs
from servingbench.usability.evidence import install_size


@pytest.fixture
def venv_root(tmp_path, monkeypatch):
    monkeypatch.setattr(venvs.sys, "prefix", str(tmp_path))  # layers live under <prefix>/frameworks
    return tmp_path


def test_a_layer_pins_its_own_version_and_still_imports_servingbench_and_torch(venv_root):
    python = venvs.create_layered_venv("demo", ["packaging==23.2"], log=lambda line: None)
    assert python == venv_root / "frameworks" / "demo" / "bin" / "python"
    assert venvs.installed_versions(python, ("packaging",)) == {"packaging": "23.2"}  # the layer's, not 26.x
    done = subprocess.run([str(python), "-c", "import servingbench, torch; print(torch.__version__)"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert venvs.installed_versions(python, ("no-such-distribution",)) is None
    size, missing = install_size(["packaging"], "demo")
    assert size is not None and 50_000 < size < 2_000_000 and missing == []  # the layer's files are counted


def test_install_names_what_needs_no_environment():
    done = run_cli("install", "fastapi", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "fastapi: runs from servingbench's own environment" in done.stdout
