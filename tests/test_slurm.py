"""`servingbench slurm` and the merge `servingbench report` makes of its job folders: the scripts line by line,
a real single-node SLURM cluster (munged + slurmctld + slurmd, private config, ports and state) running a tiny
study, and two real run folders merged into one study."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import processes_mentioning, run_cli, start_delay_server
from servingbench.cluster.slurm import SubmittedJobs
from servingbench.launch.ports import free_ports
from servingbench.results.store import load_summary

SLURM_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
DAEMONS = ("munged", "slurmctld", "slurmd")
JOB_TIMEOUT_S = 300


def _servingbench() -> str:
    """What the scripts call: this venv's servingbench, by absolute path."""
    return str(Path(sys.executable).absolute().parent / "servingbench")


def _tiny_study(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "tiny", "frameworks": ["reference"], "models": ["resnet50"], "size": "tiny",
        "load": {"users": [1], "repetitions": 1, "duration_s": 2, "warmup_s": 1}}))
    return path


def _one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_dry_run_writes_one_readable_script_per_framework_and_model(tmp_path):
    """As README shows it, from the folder holding study.yaml."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "study.yaml").write_text(yaml.safe_dump({"name": "two", "frameworks": ["reference", "fastapi"],
                                                    "models": ["resnet50", "bart-large-cnn"], "size": "tiny"}))
    done = run_cli("slurm", "study.yaml", "--partition", "gpu", "--gres", "gpu:1", "--time", "01:00:00",
                   "--out", "shared", "--dry-run", cwd=cwd, timeout=60)
    assert done.returncode == 0, done.stderr
    shared = cwd / "shared"
    scripts = sorted((shared / "slurm").glob("*.sbatch"))
    assert [s.name for s in scripts] == ["fastapi-bart-large-cnn.sbatch", "fastapi-resnet50.sbatch",
                                         "reference-bart-large-cnn.sbatch", "reference-resnet50.sbatch"]
    assert not (shared / "slurm" / "jobs.json").exists()  # nothing submitted
    assert sorted(p.name for p in (shared / "jobs").iterdir()) == [s.stem for s in scripts]
    assert yaml.safe_load((shared / "study.yaml").read_text())["frameworks"] == ["reference", "fastapi"]
    sb, out = _servingbench(), shared / "jobs" / "reference-resnet50"
    assert (shared / "slurm" / "reference-resnet50.sbatch").read_text().splitlines() == [
        "#!/bin/bash",
        "# servingbench study 'two': reference serving resnet50.",
        f"# Written by `servingbench slurm`; edit it freely, then submit it with: sbatch {scripts[-1]}",
        f"# Its results go to {out}; when every job is done: {sb} report {shared}",
        "#SBATCH --job-name=sb-reference-resnet50",
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "# Whole nodes: the server and the load generator share no cores with other jobs, so every run gets the same.",
        "#SBATCH --exclusive",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=01:00:00",
        f"#SBATCH --output={shared}/slurm/logs/reference-resnet50-%j.out",
        f"#SBATCH --error={shared}/slurm/logs/reference-resnet50-%j.err",
        "set -euo pipefail",
        'cd "${SLURM_SUBMIT_DIR:-.}"',
        "",
        "# The server and the load generator in this one allocation, as in the study.",
        f"{sb} run {shared}/study.yaml --frameworks reference --models resnet50 --out {out}",
    ]
    assert (shared / "slurm" / "logs").is_dir()  # sbatch does not make the folder of --output
    assert f"servingbench report {shared}" in done.stdout
    assert sorted(p.name for p in cwd.iterdir()) == ["shared", "study.yaml"]
    bash = subprocess.run(["bash", "-n", str(scripts[0])], capture_output=True, text=True)
    assert bash.returncode == 0, bash.stderr


def test_load_nodes_put_workers_on_the_other_nodes(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = run_cli("slurm", str(_tiny_study(tmp_path / "study.yaml")), "--partition", "cpu", "--load-nodes", "2",
                   "--gres", "gpu:1", "--account", "proj42", "--out", "shared", "--dry-run", cwd=cwd, timeout=60)
    assert done.returncode == 0, done.stderr
    shared = cwd / "shared"
    script = shared / "slurm" / "reference-resnet50.sbatch"
    lines = script.read_text().splitlines()
    sb, out = _servingbench(), shared / "jobs" / "reference-resnet50"
    assert lines[5:8] == ["#SBATCH --partition=cpu", "#SBATCH --account=proj42", "#SBATCH --nodes=3"]
    assert not any(line.startswith("#SBATCH --time") for line in lines)
    gres = lines.index("#SBATCH --gres=gpu:1")
    assert lines[gres - 1] == "# --gres is per node: the load nodes get it too (a heterogeneous job would spare them)."
    body = lines[lines.index('cd "${SLURM_SUBMIT_DIR:-.}"') + 1:]
    assert [line for line in body if line and not line.startswith("#")] == [
        'master=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f'srun --nodes=2 --ntasks=2 --exclude="$master" {sb} worker --master "$master:5557" &',
        "workers=$!",
        "trap 'kill \"$workers\" 2>/dev/null || true' EXIT",
        f"{sb} run {shared}/study.yaml --frameworks reference --models resnet50 --out {out} \\",
        "  --load-workers 0 --remote-workers 2 --master-bind 0.0.0.0:5557",
    ]
    bash = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert bash.returncode == 0, bash.stderr


@pytest.mark.parametrize(("flags", "message"), [
    (["--time", "90 minutes"], "--time: '90 minutes' is not a SLURM time limit"),
    (["--partition", "gpu\n#SBATCH --nodes=99"], r"--partition: 'gpu\n#SBATCH --nodes=99' is not a SLURM name"),
])
def test_bad_slurm_flags_are_one_line_errors(tmp_path, flags, message):
    args = ["slurm", str(_tiny_study(tmp_path / "study.yaml")), "--partition", "gpu", *flags,
            "--out", str(tmp_path / "shared"), "--dry-run"]
    _one_line_error(run_cli(*args, timeout=60), message)
    assert not (tmp_path / "shared").exists()


def test_without_sbatch_it_says_to_use_dry_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    done = run_cli("slurm", str(_tiny_study(tmp_path / "study.yaml")), "--partition", "gpu",
                   "--out", str(tmp_path / "shared"), timeout=60)
    _one_line_error(done, "sbatch is not on PATH", "--dry-run")


def test_report_merges_job_folders_and_names_jobs_without_results(tmp_path):
    """Two real `servingbench load` runs as two jobs' folders, and a job that has not started."""
    shared = tmp_path / "shared"
    servers = [start_delay_server(tmp_path, 5) for _ in range(2)]
    try:
        for name, (_, url) in zip(("a", "b"), servers):
            done = run_cli("load", url, "--users", "1", "--duration", "1", "--warmup", "0",
                           "--out", str(shared / "jobs" / name), timeout=120)
            assert done.returncode == 0, done.stderr[-2000:]
    finally:
        for proc, _ in servers:
            proc.stop()
    (shared / "jobs" / "c").mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = run_cli("report", str(shared), cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "warning: no results yet (queued, running, or failed before its first cell): c" in done.stderr
    merged = load_summary(shared)
    assert not merged.complete  # job c has not run
    jobs = {name: load_summary(shared / "jobs" / name) for name in ("a", "b")}
    assert [c.model for c in merged.cells] == [jobs["a"].cells[0].model, jobs["b"].cells[0].model]
    for name, cell in zip(("a", "b"), merged.cells):
        original = jobs[name].cells[0]
        assert cell.requests == original.requests > 0 and cell.throughput_rps == original.throughput_rps
        trial, original_trial = cell.repetitions[0], original.repetitions[0]
        assert trial.records_file == f"jobs/{name}/{original_trial.records_file}"
        assert (shared / trial.records_file).is_file()
    environment = yaml.safe_load((shared / "environment.json").read_text())
    assert sorted(environment["jobs"]) == ["a", "b"]
    html = (shared / "report.html").read_text()
    assert all(cell.model in html for cell in merged.cells)
    assert len(list((shared / "timeseries").glob("*.csv"))) == 2  # read from the jobs' records
    assert list(cwd.iterdir()) == []


@dataclass
class SlurmCluster:
    folder: Path
    partition: str

    def command(self, *args: str) -> str:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    def log_tail(self) -> str:
        return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:])
                         for log in sorted(self.folder.glob("*.log")))


def _cluster_missing() -> str | None:
    missing = [t for t in (*DAEMONS, "sbatch", "squeue", "scontrol") if shutil.which(t, path=SLURM_PATH) is None]
    if missing:
        return f"SLURM is not installed here (no {', '.join(missing)}; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the private SLURM cluster runs its daemons as root (SlurmUser=root)"
    return None


def _stop_by_pid_file(pid_file: Path) -> None:
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
        psutil.Process(pid).wait(timeout=20)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass


@pytest.fixture
def slurm_cluster(monkeypatch):
    """munged, slurmctld and slurmd on this host with their own key, config, ports, state and logs in a short
    /tmp folder (unix socket paths are short); stopped by their pid files. Nothing touches /etc/slurm."""
    if reason := _cluster_missing():
        pytest.skip(reason)
    monkeypatch.setenv("PATH", SLURM_PATH)
    folder = Path(tempfile.mkdtemp(prefix="sb-slurm-", dir="/tmp"))
    folder.chmod(0o755)  # munged wants its socket's folder open to all
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    controller_port, node_port = free_ports(2)
    node = socket.gethostname().split(".")[0]
    (folder / "state").mkdir()
    (folder / "spool").mkdir()
    config = folder / "slurm.conf"
    config.write_text(f"""\
ClusterName=servingbench
SlurmctldHost={node}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.sock
SlurmUser=root
SlurmdUser=root
SlurmctldPort={controller_port}
SlurmdPort={node_port}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={psutil.virtual_memory().total // 2**21} State=UNKNOWN
PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    monkeypatch.setenv("SLURM_CONF", str(config))
    cluster = SlurmCluster(folder, "test")
    try:
        subprocess.run(["munged", "--key-file", str(key), "--socket", str(folder / "munge.sock"),
                        "--pid-file", str(folder / "munged.pid"), "--log-file", str(folder / "munged.log"),
                        "--seed-file", str(folder / "munge.seed")], check=True, timeout=30)
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(config)], check=True, timeout=30)
        deadline = time.monotonic() + 30
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout:
            assert time.monotonic() < deadline, f"the node never became idle\n{cluster.log_tail()}"
            time.sleep(0.5)
        yield cluster
    finally:
        jobs = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
        if jobs:
            subprocess.run(["scancel", *jobs], timeout=30)
        for daemon in reversed(DAEMONS):
            _stop_by_pid_file(folder / f"{daemon}.pid")
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_job(cluster: SlurmCluster, job_id: str) -> str:
    """The job's final state, once it has one (bounded)."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        state = re.search(r"JobState=(\S+)", cluster.command("scontrol", "show", "job", "-o", job_id)).group(1)
        if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return state
        assert time.monotonic() < deadline, f"job {job_id} still {state} after {JOB_TIMEOUT_S} s"
        time.sleep(1)


def test_a_real_single_node_cluster_runs_the_study_and_report_merges_it(slurm_cluster, tmp_path):
    study = _tiny_study(tmp_path / "study.yaml")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    refused = run_cli("slurm", str(study), "--partition", "nope", "--out", "refused", cwd=cwd, timeout=60)
    _one_line_error(refused, "sbatch", "refused/slurm/reference-resnet50.sbatch failed:", "invalid partition")
    shutil.rmtree(cwd / "refused")

    done = run_cli("slurm", str(study), "--partition", slurm_cluster.partition, "--out", "shared", cwd=cwd,
                   timeout=60)
    assert done.returncode == 0, done.stderr
    shared = cwd / "shared"
    [job] = SubmittedJobs.model_validate_json((shared / "slurm" / "jobs.json").read_text()).jobs
    assert (job.framework, job.model, job.out) == ("reference", "resnet50", shared / "jobs" / "reference-resnet50")
    assert f"submitted job {job.job_id}: reference / resnet50" in done.stdout
    assert f"squeue -j {job.job_id}" in done.stdout
    state = _wait_for_job(slurm_cluster, job.job_id)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((shared / "slurm" / "logs").iterdir()))
    assert state == "COMPLETED", f"{state}\n{logs}\n{slurm_cluster.log_tail()}"
    assert (shared / "slurm" / "logs" / f"reference-resnet50-{job.job_id}.out").is_file()

    report = run_cli("report", "shared", cwd=cwd, timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "warning" not in report.stderr
    merged = load_summary(shared)
    assert merged.complete and merged.study == "tiny"
    [cell] = merged.cells
    assert (cell.framework, cell.model, cell.users, cell.status) == ("reference", "resnet50", 1, "ok")
    assert cell.correct and cell.correct.ok is True
    assert cell.requests > 0 and cell.failed == 0
    records = shared / cell.repetitions[0].records_file
    assert records.is_file() and records.is_relative_to(job.out)
    assert (shared / "report.html").is_file() and (shared / "tables" / "README.md").is_file()
    assert sorted(p.name for p in cwd.iterdir()) == ["shared"]
    assert processes_mentioning(str(shared)) == []
