"""Faults injected into real servers mid-study (issue 17): each is counted as failures or timeouts in its
trial (never dropped: requests = ok + failed), the cell says what happened in plain words, the study goes
on with the next cell, and no process is left, however servingbench itself ends (SIGKILL included)."""
import dataclasses
import errno
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from conftest import alive, cli_in_background, processes_mentioning, run_cli, wait_until
from servingbench.adapters import ADAPTERS, get_adapter
from servingbench.adapters.base import Adapter
from servingbench.adapters.reference import ReferenceAdapter
from servingbench.adapters.torchserve import TorchServeAdapter
from servingbench.adapters.triton import TritonAdapter
from servingbench.config import load_study
from servingbench.display import Display
from servingbench.launch.procfs import identity
from servingbench.launch.scratch import OWNER_FILE, scratch_dir
from servingbench.orchestrate.study import StudyRunner
from servingbench.results.store import load_summary
from servingbench.testing.fault_proxy import FaultProxy

REFERENCE_SERVER = "servingbench.adapters.reference_server"
LOAD_GENERATOR = "locust_worker"


def available(framework: str) -> bool:
    return get_adapter(framework, load_study("smoke")).availability().ok


def pids_mentioning(text: str, *more: str) -> list[int]:
    """Live processes whose command line contains `text` and each of `more`."""
    return [int(line.split(":", 1)[0]) for line in processes_mentioning(text) if all(m in line for m in more)]


def tree_of(pids: list[int]) -> list[psutil.Process]:
    """The processes `pids` and all their descendants, as psutil handles (a reused pid is not theirs)."""
    tree = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return tree


def still_alive(processes: list[psutil.Process], within_s: float) -> list[str]:
    """Those of `processes` still running (zombies count as gone) after waiting up to `within_s`."""
    deadline = time.monotonic() + within_s
    while (left := alive(processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def listening_ports(processes: list[psutil.Process]) -> set[int]:
    ports = set()
    for proc in processes:
        try:
            ports |= {c.laddr.port for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.NoSuchProcess:
            pass
    return ports


def anything_listening_on(ports: set[int]) -> set[int]:
    return {c.laddr.port for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port in ports}


# ---- No orphans, ever ---------------------------------------------------------------------------------------

def test_a_daemonised_grandchild_dies_with_a_sigkilled_parent(tmp_path):
    """The reaper's whole point, without any framework: a child that leaves a grandchild behind under PID 1
    (as `torchserve` leaves its Java) and a parent that is SIGKILLed, which no atexit hook sees."""
    marker = str(tmp_path / "grandchild")
    orphan_maker = f"{sys.executable} -c 'import time; time.sleep(300)' {marker} &"
    parent_code = ("import sys, time\nfrom pathlib import Path\nfrom servingbench.launch.process import ManagedProcess\n"
                   f"ManagedProcess(['sh', '-c', {orphan_maker!r}], Path({str(tmp_path / 'sh.log')!r})).start()\n"
                   "time.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code])

    def grandchildren() -> list[int]:  # the sleeper's command line ends with the marker; its parents' do not
        return [int(line.split(":", 1)[0]) for line in processes_mentioning(marker) if line.endswith(marker)]

    try:
        wait_until(parent, grandchildren, timeout_s=60)
        [pid] = grandchildren()
        grandchild = psutil.Process(pid)
        assert grandchild.ppid() != parent.pid  # re-parented: out of the parent's reach
    finally:
        parent.kill()
        parent.wait()
    assert still_alive([grandchild], within_s=15) == []


def test_the_next_command_removes_scratch_folders_whose_owner_died(tmp_path):
    made = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from servingbench.launch."
                           "scratch import scratch_dir; print(scratch_dir('ts', Path(sys.argv[1])))", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    stale = Path(made.stdout.strip())
    assert stale.is_dir() and (stale / OWNER_FILE).read_text().split()[0].isdigit(), made.stderr
    mine = scratch_dir("ts", tmp_path / "another run")  # its owner, this test, is alive: it stays
    try:
        done = run_cli("--version", cwd=tmp_path, timeout=60)
        assert done.returncode == 0, done.stderr
        assert not stale.exists() and mine.is_dir()
    finally:
        for folder in (stale, mine):
            subprocess.run(["rm", "-rf", str(folder)], check=True)


@pytest.mark.parametrize("framework", ["reference", "torchserve", "triton"])
def test_a_sigkilled_servingbench_leaves_no_process_no_port_and_no_scratch_folder(tmp_path, framework):
    if not available(framework):
        pytest.skip(f"{framework} is not installed here")
    out = tmp_path / "results"
    with cli_in_background("run", "smoke", "--frameworks", framework, "--models", "resnet50", "--users", "1",
                           "--repetitions", "1", "--duration", "60", "--warmup", "0", "--out", str(out)) as proc:
        wait_until(proc, lambda: any(LOAD_GENERATOR in p for p in processes_mentioning(str(out))), timeout_s=300)
        time.sleep(1)  # mid-trial
        tree = tree_of([proc.pid, *pids_mentioning(str(out))])
        ports = listening_ports(tree)
        owner = identity(proc.pid)
        scratch = [f for f in Path(tempfile.gettempdir()).glob("servingbench-*-*")
                   if (f / OWNER_FILE).exists() and (f / OWNER_FILE).read_text() == owner]
        assert ports, "the server should be listening now"
        assert scratch or framework != "torchserve", "TorchServe's scratch folder should be there now"
        proc.kill()
        proc.wait()
    assert still_alive(tree, within_s=30) == []  # servers, their workers, the load generator, the reaper
    assert anything_listening_on(ports) == set()
    assert [f for f in scratch if f.exists()] == []


# ---- Faults during a study ----------------------------------------------------------------------------------

PROXY: dict[str, FaultProxy] = {}  # the proxy of the server started last


def behind_fault_proxy(base: type[Adapter]) -> type[Adapter]:
    """Test-only: a real framework's server, its benchmark requests passing through a FaultProxy."""

    class BehindFaultProxy(base):
        name = f"{base.name}-behind-fault-proxy"

        def launch_spec(self, artifact, ports, run_dir):
            spec = super().launch_spec(artifact, ports, run_dir)
            PROXY["live"] = FaultProxy(spec.base_url).start()
            return dataclasses.replace(spec, base_url=PROXY["live"].url)

    return BehindFaultProxy


ReferenceBehindFaultProxy = behind_fault_proxy(ReferenceAdapter)
TorchServeBehindFaultProxy = behind_fault_proxy(TorchServeAdapter)
TritonBehindFaultProxy = behind_fault_proxy(TritonAdapter)
PROXIED = {"reference": "ReferenceBehindFaultProxy", "torchserve": "TorchServeBehindFaultProxy",
           "triton": "TritonBehindFaultProxy"}
# How each framework's server process, and one of its workers, shows in `ps`.
SERVER = {"reference": REFERENCE_SERVER, "torchserve": "org.pytorch.serve.ModelServer", "triton": "tritonserver"}
# Triton end to end runs a stub per step (pre, network, post): the network's is killed.
WORKER = {"torchserve": ("model_service_worker",), "triton": ("triton_python_backend_stub", "_network/")}


@dataclass
class FaultRun:
    """One fault injected into one framework's study, and what servingbench made of it."""

    fault: str
    framework: str
    proxied: str  # the adapter name of the framework behind the proxy: the faulty cells are its cells
    tmp_path: Path
    cells: dict = field(default_factory=dict)
    left: list[str] = field(default_factory=list)

    def server_pid(self) -> int:
        [pid] = pids_mentioning(str(self.tmp_path), SERVER[self.framework], "fault-proxy")
        return pid

    def worker_pid(self) -> int:
        server = psutil.Process(self.server_pid())
        return next(p.pid for p in server.children(recursive=True)
                    if all(part in " ".join(p.cmdline()) for part in WORKER[self.framework]))

    def faulty(self, users: int = 1):
        return self.cells[(self.proxied, users)]

    def unaccounted(self) -> int:
        return sum(t.requests - t.ok - t.failed for c in self.cells.values() for t in c.repetitions)

    def records_kept(self) -> bool:
        return all((self.tmp_path / "results" / t.records_file).is_file()
                   for c in self.cells.values() for t in c.repetitions)


@pytest.fixture(scope="module")
def fault_table(request):
    """Every fault run's row; printed as the closing note's Markdown table when the module ends (`-s` shows it)."""
    rows: list[FaultRun] = []
    yield rows
    if rows:
        print("\n| fault | framework | what servingbench reported | requests unaccounted | processes left "
              "| results kept |\n|---|---|---|---|---|---|")
        for run in rows:
            cell = run.faulty()
            said = cell.reason if cell.status != "ok" else "; ".join(
                w for t in cell.repetitions for w in t.warnings if "failed" in w or "stall" in w)
            print(f"| {run.fault} | {run.framework} | {cell.status}: {said[:160]} | {run.unaccounted()} "
                  f"| {len(run.left)} | {'yes' if run.records_kept() else 'NO'} |")


def run_study_with_fault(tmp_path: Path, framework: str, fault: str, inject, monkeypatch, users=(1,),
                         request_timeout_s=1.0, during_startup=None) -> FaultRun:
    """A study of tiny resnet50 on `framework` behind the fault proxy, then on plain `reference` (the study must go
    on); `inject(run)` runs 1 s into the first trial, `during_startup(run)` while the first server starts.
    Checks that every request is in the records and nothing is left running."""
    if framework != "reference" and not available(framework):
        pytest.skip(f"{framework} is not installed here")
    proxied = f"{framework}-behind-fault-proxy"
    monkeypatch.setitem(ADAPTERS, proxied, f"{__name__}:{PROXIED[framework]}")
    run = FaultRun(fault, framework, proxied, tmp_path)
    study = load_study("smoke", {"frameworks": [proxied, "reference"], "models": ["resnet50"],
                                 "load.users": list(users), "load.repetitions": 1, "load.duration_s": 3.0,
                                 "load.warmup_s": 0, "load.request_timeout_s": request_timeout_s,
                                 "server.startup_timeout_s": 180})
    problems: list[BaseException] = []

    def injector():
        try:
            if during_startup:
                return during_startup(run)
            deadline = time.monotonic() + 300
            while not pids_mentioning(str(tmp_path), LOAD_GENERATOR):
                assert time.monotonic() < deadline, "no trial started"
                time.sleep(0.05)
            time.sleep(1.0)
            inject(run)
        except BaseException as exc:  # noqa: BLE001 - reported by the test's own thread
            problems.append(exc)

    thread = threading.Thread(target=injector, daemon=True)
    thread.start()
    try:
        summary = StudyRunner(study, tmp_path / "results", Display()).run()
    finally:
        thread.join(timeout=120)
        if "live" in PROXY:
            PROXY.pop("live").stop()
    assert problems == []
    run.cells = {(c.framework, c.users): c for c in summary.cells}
    run.left = still_alive(tree_of(pids_mentioning(str(tmp_path))), within_s=15)
    assert run.left == []
    assert run.unaccounted() == 0  # every request sent is in the records: ok or failed
    assert run.records_kept()
    after = run.cells[("reference", users[0])]
    assert after.status == "ok" and after.repetitions[0].ok > 0  # the study went on
    return run


def wait_for_pid(find, timeout_s: float = 300) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return find()
        except (ValueError, StopIteration, psutil.NoSuchProcess):
            assert time.monotonic() < deadline, "the process to fault never showed"
            time.sleep(0.02)


def answers_503_for_a_while(run: FaultRun) -> None:
    trial = run.faulty().repetitions[0]
    assert run.faulty().status == "ok" and trial.ok > 0
    # the proxy's 503s that fell in the window (some fall in warm-up); a request cut off as the proxy switches
    # back may time out on a busy 2-core host
    assert 0 < trial.errors["HTTP 503"] <= PROXY_COUNTS[run.fault] and set(trial.errors) <= {"HTTP 503", "timeout"}
    assert any(w.startswith(f"{trial.failed} of {trial.requests} requests failed (") and "HTTP 503" in w
               for w in trial.warnings)


def answers_slower_than_the_timeout(run: FaultRun) -> None:
    trial = run.faulty().repetitions[0]
    assert run.faulty().status == "ok" and trial.ok > 0
    assert trial.errors["timeout"] > 0 and set(trial.errors) == {"timeout"}  # held ones that timed out, no other kind
    assert f"{trial.failed} of {trial.requests} requests failed ({trial.failed} timeout)" in trial.warnings


def server_gone_mid_trial(run: FaultRun) -> None:
    cell = run.faulty()
    assert cell.status == "failed" and "during trial" in cell.reason
    assert "exited with code" in cell.reason or "stopped answering" in cell.reason
    assert cell.log_tail.strip()  # the server's own last words come with the reason


def frozen_mid_trial(run: FaultRun) -> None:
    cell, next_level = run.faulty(1), run.faulty(2)
    assert cell.status == "failed" and "stopped answering" in cell.reason and "during trial" in cell.reason
    assert cell.repetitions[0].errors.get("timeout", 0) > 0
    assert next_level.status == "failed" and "during trial" in next_level.reason and not next_level.repetitions


def load_generator_killed(run: FaultRun) -> None:
    killed, next_level = run.faulty(1), run.faulty(2)
    assert killed.status == "failed" and not killed.repetitions
    assert "not measured, its requests not counted" in killed.reason
    assert "load generator failed (exited with code -9 (killed by SIGKILL))" in killed.reason
    assert next_level.status == "ok" and next_level.repetitions[0].ok > 0  # same server, next cell


def died_starting(run: FaultRun) -> None:
    cell = run.faulty()
    assert cell.status == "failed" and not cell.repetitions
    # TorchServe's launcher waits for its Java server and then exits 0, whatever ended the server
    how = "exited with code 0" if run.framework == "torchserve" else "killed by SIGKILL"
    assert "before it was ready" in cell.reason and how in cell.reason


def worker_killed(run: FaultRun) -> None:  # a framework may replace the worker: only the invariants hold
    assert run.faulty().status in ("ok", "failed") and (run.faulty().reason or run.faulty().repetitions)


PROXY_COUNTS: dict[str, int] = {}


def _inject_503(run: FaultRun) -> None:
    PROXY["live"].inject(for_s=1.0, status=503)
    time.sleep(1.1)
    PROXY_COUNTS[run.fault] = PROXY["live"].answered_status


def _inject_slow(run: FaultRun) -> None:
    PROXY["live"].inject(for_s=1.2, delay_s=1.0)
    time.sleep(1.3)  # the window has closed: no request is held any more


def _kill_during_startup(run: FaultRun) -> None:
    os.kill(wait_for_pid(run.server_pid), signal.SIGKILL)


# fault: (inject, check, users, request timeout, during start-up)
FAULTS = {
    "503 for a while": (_inject_503, answers_503_for_a_while, (1,), 1.0, None),
    "slower than the request timeout": (_inject_slow, answers_slower_than_the_timeout, (1,), 0.4, None),
    "server killed mid-trial": (lambda run: os.kill(run.server_pid(), signal.SIGKILL), server_gone_mid_trial,
                                (1,), 1.0, None),
    "server frozen (SIGSTOP)": (lambda run: os.kill(run.server_pid(), signal.SIGSTOP), frozen_mid_trial,
                                (1, 2), 1.0, None),
    "load generator killed": (lambda run: os.kill(pids_mentioning(str(run.tmp_path), LOAD_GENERATOR)[0],
                                                  signal.SIGKILL), load_generator_killed, (1, 2), 1.0, None),
    "server dies during start-up": (None, died_starting, (1,), 1.0, _kill_during_startup),
    "one worker killed mid-trial": (lambda run: os.kill(run.worker_pid(), signal.SIGKILL), worker_killed,
                                    (1,), 1.0, None),
}
# The default test command runs every fault on reference; the whole matrix is @slow.
MATRIX = [pytest.param(fault, framework, id=f"{framework}-{fault.replace(' ', '-')}",
                       marks=[pytest.mark.slow] if framework != "reference" else [])
          for fault in FAULTS for framework in ("reference", "torchserve", "triton")
          if fault != "one worker killed mid-trial" or framework in WORKER]


@pytest.mark.parametrize("fault, framework", MATRIX)
def test_a_fault_is_counted_said_and_survived(tmp_path, monkeypatch, fault_table, fault, framework):
    inject, check, users, timeout_s, during_startup = FAULTS[fault]
    run = run_study_with_fault(tmp_path, framework, fault, inject, monkeypatch, users, timeout_s, during_startup)
    fault_table.append(run)
    check(run)


# ---- The results disk fills up --------------------------------------------------------------------------------

@contextmanager
def small_tmpfs(mount_point: Path, size: str = "96m"):
    """A tmpfs of `size` mounted at `mount_point` for the test (root only; skipped where mounting is not allowed)."""
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill_up(folder: Path) -> Path:
    """Another program takes every byte left on `folder`'s disk; returns its file (delete it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 20, 4096, 1):  # down to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def first_cell_saved(out: Path) -> bool:
    return (out / "summary.json").exists() and any(c.status == "ok" for c in load_summary(out).cells)


def test_a_full_results_disk_stops_the_study_keeps_what_finished_and_resume_runs_the_rest(tmp_path):
    with small_tmpfs(tmp_path / "disk") as disk:
        out = disk / "results"
        first_records = out / "requests" / "reference--resnet50--u1--r1.parquet"
        with cli_in_background("run", "smoke", "--frameworks", "reference", "--models", "resnet50", "--users",
                               "1,2,3", "--repetitions", "1", "--duration", "3", "--warmup", "0",
                               "--out", str(out)) as proc:
            # the disk fills up during the second trial, the first one finished and saved
            wait_until(proc, lambda: first_cell_saved(out)
                       and any(LOAD_GENERATOR in p for p in processes_mentioning(str(out))), timeout_s=300)
            tree = tree_of([proc.pid, *pids_mentioning(str(out))])
            kept = first_records.read_bytes()
            filler = fill_up(disk)
            _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1
        said = stderr.strip().splitlines()[-1]
        assert said.startswith("servingbench: error: the disk holding") and "is full" in said
        assert f"servingbench run --resume {out}" in said and "Traceback" not in stderr
        assert still_alive(tree, within_s=15) == []
        saved = load_summary(out)  # the last summary.json written whole: the first trial in it
        assert [(c.users, c.status) for c in saved.cells][:1] == [(1, "ok")] and not saved.complete

        filler.unlink()
        done = run_cli("run", "--resume", str(out), timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        resumed = load_summary(out)
        assert resumed.complete and [(c.users, c.status) for c in resumed.cells] == [(1, "ok"), (2, "ok"), (3, "ok")]
        assert first_records.read_bytes() == kept  # a finished trial's raw records are never rewritten
