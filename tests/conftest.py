"""Shared fixtures: real servers on 127.0.0.1, the CLI as a user runs it, and process checks."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import yaml

from servingbench.adapters import get_adapter
from servingbench.config import load_study
from servingbench.launch.ports import free_port
from servingbench.launch.process import ManagedProcess, wait_ready
from servingbench.load.transport import send_once
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


def alive(processes: list[psutil.Process]) -> list[str]:
    """Those of `processes` still running (a zombie waiting to be reaped counts as gone), as 'pid: cmdline'."""
    found = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid}: {' '.join(proc.cmdline())[:200]}")
        except psutil.NoSuchProcess:
            pass
    return found


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


def run_resnet50_and_bart_study(framework: str, tmp_path: Path, *args: str, timeout: float = 900) -> tuple[list[dict], Path]:
    """`servingbench run STUDY.yaml --out DIR` serving tiny resnet50 and bart-large-cnn on `framework` (2 users,
    one short trial), from an empty working directory as a user runs it. Checks that both cells are measured
    and answer like the model, that nothing is left in that directory nor running from the results folder;
    returns the cells and the results folder."""
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "frameworks": [framework], "models": ["resnet50", "bart-large-cnn"], "size": "tiny",
        "load": {"users": [2], "repetitions": 1, "duration_s": 2, "warmup_s": 0.5}}))
    out, cwd = tmp_path / "results", tmp_path / "cwd"
    cwd.mkdir()
    done = run_cli("run", str(study), "--out", str(out), *args, timeout=timeout, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = json.loads((out / "summary.json").read_text())["cells"]
    assert sorted(c["model"] for c in cells) == ["bart-large-cnn", "resnet50"]
    for cell in cells:
        assert cell["status"] == "ok" and cell["correct"]["ok"] is True, cell
        assert cell["failed"] == 0 and cell["throughput_rps"]["mean"] > 0
    assert list(cwd.iterdir()) == []  # nothing written where the user ran servingbench
    assert processes_mentioning(str(out)) == []
    return cells, out


def assert_server_time(cell: dict, split: bool = False) -> None:
    """The framework's own counters, scraped around the trial, saw the trial's requests and timed them
    (`split`: also into inference and the rest)."""
    metrics = cell["repetitions"][0]["server_metrics"]
    assert metrics["requests_total"] >= cell["repetitions"][0]["ok"] and metrics["server_ms_mean"] > 0, metrics
    if split:
        assert metrics["server_ms_mean"] >= metrics["inference_ms_mean"] > 0, metrics


def assert_answers_raw_bytes_like_the_model(live, adapter, model, loaded) -> None:
    """A live resnet50 server answers a sample's raw bytes as the model does in-process, and refuses
    b"not an image" in their place with a 400, not a crash."""
    sample = model.samples()[0]
    status, body, error = send_once(live.launch.base_url, adapter.request(model, sample), 30)
    assert error is None, body[:300]
    assert adapter.decode(model, status, body)["top5"][0][0] == loaded.predict(sample.data)["top5"][0][0]
    bad_status, _, bad_error = send_once(live.launch.base_url, adapter.request(model, sample).model_copy(
        update={"body": b"not an image"}), 30)
    assert bad_status == 400 and bad_error == "HTTP 400"

