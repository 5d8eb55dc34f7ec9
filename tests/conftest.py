"""Shared fixtures: real servers on 127.0.0.1, the CLI as a user runs it, and process checks."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
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


@contextmanager
def cli_in_background(*args: str):
    """The CLI started in a fresh process, stdout and stderr piped; killed on the way out if still running."""
    proc = subprocess.Popen([sys.executable, "-m", "servingbench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def wait_until(proc: subprocess.Popen, condition, timeout_s: float = 240) -> None:
    """Poll `condition` while the CLI runs; fail with its stderr if it exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"condition not met in {timeout_s} s"
        time.sleep(0.2)


def signal_and_wait(proc: subprocess.Popen, sig: int, timeout_s: float = 60) -> str:
    """Send `sig` to the CLI and wait for it to exit; returns its stderr."""
    proc.send_signal(sig)
    return proc.communicate(timeout=timeout_s)[1]


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line contains `text` (e.g. a results folder every child names)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if text in cmdline and proc.pid != os.getpid():
            found.append(f"{proc.pid}: {cmdline}")
    return found


def listening_addresses(pid: int) -> set[str]:
    """The addresses every process of the tree under `pid` listens on. An IPv4-mapped IPv6 socket (gRPC's
    way to listen on 127.0.0.1: ::ffff:127.0.0.1) counts as its IPv4 address."""
    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    addresses = {ipaddress.ip_address(c.laddr.ip) for p in tree for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN}
    return {str(getattr(a, "ipv4_mapped", None) or a) for a in addresses}


@contextmanager
def launched(framework: str, model_name: str, options: dict, tmp_path: Path):
    """One model packaged for one framework and its real server up: yields (adapter, model, launch spec)."""
    adapter = get_adapter(framework, load_study("smoke", {"server.options": {framework: options}}))
    model = get_model(model_name)
    with deployed(adapter, model, model.load(), tmp_path, 180) as live:
        yield adapter, model, live.launch
