"""Shared fixtures: real servers on 127.0.0.1, the CLI as a user runs it, and process checks."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from servingbench.adapters import get_adapter
from servingbench.config import load_study
from servingbench.launch.ports import free_port
from servingbench.launch.process import ManagedProcess, wait_ready
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests share one model/asset cache (set SERVINGBENCH_CACHE to reuse yours across runs)."""
    if "SERVINGBENCH_CACHE" not in os.environ:
        os.environ["SERVINGBENCH_CACHE"] = str(Path.home() / ".cache" / "servingbench")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def start_delay_server(tmp_path: Path, delay_ms: float, concurrency: int | None = None) -> tuple[ManagedProcess, str]:
    port = free_port()
    limit = ["--concurrency", str(concurrency)] if concurrency else []
    proc = ManagedProcess([sys.executable, "-m", "servingbench.testing.delay_server", "--port", str(port),
                           "--delay-ms", str(delay_ms), *limit], tmp_path / f"delay-{port}.log", name="delay server")
    proc.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{url}/ready", timeout_s=20)
    return proc, url


@pytest.fixture
def delay_server_20ms(tmp_path):
    proc, url = start_delay_server(tmp_path, 20)
    yield url
    proc.stop()


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, exactly as a user runs it.

    If the test gives up (timeout, failure), the CLI gets SIGTERM first so that it stops its servers
    itself; a SIGKILL would leave their grandchildren (e.g. TorchServe's Java) behind.
    """
    argv = [sys.executable, "-m", "servingbench.cli", *args]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:
            proc.terminate()
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line contains `text` (e.g. a results folder every child names)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if text in cmdline and proc.pid != os.getpid():
            found.append(f"{proc.pid}: {cmdline}")
    return found


@contextmanager
def launched(framework: str, model_name: str, options: dict, tmp_path: Path):
    """One model packaged for one framework and its real server up: yields (adapter, model, launch spec)."""
    adapter = get_adapter(framework, load_study("smoke", {"server.options": {framework: options}}))
    model = get_model(model_name)
    with deployed(adapter, model, model.load(), tmp_path, 180) as live:
        yield adapter, model, live.launch
