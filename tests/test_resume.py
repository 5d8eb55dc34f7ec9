"""`servingbench run --resume DIR`: a study killed with SIGKILL at a random trial, resumed, ends with the same trials
as one never interrupted, its finished trials' records untouched; changed studies, corrupt and tune folders refused
without touching anything; a finished study runs nothing."""
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import alive, processes_mentioning, run_cli

MODELS = ["resnet50", "efficientnet-lite0"]
USERS = [1, 2]
REPETITIONS = 2
TRIALS = len(MODELS) * len(USERS) * REPETITIONS
KILL_SEED = 17


def write_study(path: Path, users: list[int] = USERS) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "resume-test", "frameworks": ["reference"], "models": MODELS, "size": "tiny",
        "inprocess_iterations": 2,
        "load": {"users": users, "repetitions": REPETITIONS, "duration_s": 1, "warmup_s": 0.5}}))
    return path


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def trial_ids(summary: dict) -> set[str]:
    return {t["trial_id"] for c in summary["cells"] for t in c["repetitions"]}


def records_files(summary: dict) -> set[str]:
    return {t["records_file"] for c in summary["cells"] for t in c["repetitions"]}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder`: (mtime_ns, size), to show that nothing was touched."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The study run once, start to finish."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    out = tmp / "results"
    done = run_cli("run", str(write_study(tmp / "study.yaml")), "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(trial_ids(summary_of(out))) == TRIALS
    return out


def test_study_killed_at_a_random_trial_resumes_to_the_same_trials(uninterrupted, tmp_path):
    study, cwd = write_study(tmp_path / "study.yaml"), tmp_path / "cwd"
    cwd.mkdir()
    out = cwd / "results" / "interrupted"
    kill_after = random.Random(KILL_SEED).randint(1, TRIALS - 1)  # trials finished when servingbench is killed
    argv = [sys.executable, "-m", "servingbench.cli", "run", str(study), "--out", "results/interrupted"]
    with subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        tree: dict[int, psutil.Process] = {}
        deadline = time.monotonic() + 400
        while True:  # until `kill_after` trials are saved and the next one is writing its records
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, f"{kill_after} trials not saved in time"
            tree.update({p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)})
            if (out / "summary.json").exists():
                saved = summary_of(out)
                in_progress = {str(p.relative_to(out)) for p in (out / "requests").glob("*.parquet")} \
                    - records_files(saved)
                if len(trial_ids(saved)) >= kill_after and in_progress:
                    break
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no handler, no atexit, nothing of servingbench runs after it
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30  # the reaper takes the servers' sessions down once servingbench is gone
    while alive(list(tree.values())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(list(tree.values())) == [], "processes left after servingbench was killed"

    killed = summary_of(out)
    assert killed["complete"] is False and len(trial_ids(killed)) >= kill_after
    finished_files = records_files(killed)
    partial = {str(p.relative_to(out)) for p in (out / "requests").glob("*.parquet")} - finished_files
    assert partial, "the trial in progress had started writing its records"
    before = {name: (out / name).stat().st_mtime_ns for name in finished_files}

    done = run_cli("run", "--resume", "results/interrupted", timeout=600, cwd=cwd)  # as README shows
    assert done.returncode == 0, done.stderr[-3000:]
    assert "finishing" in done.stderr and "removed" in done.stderr, done.stderr[-3000:]

    resumed = summary_of(out)
    assert trial_ids(resumed) == trial_ids(summary_of(uninterrupted))
    assert resumed["complete"] is True and len(resumed["resumed_at"]) == 1
    assert all(c["status"] == "ok" and len(c["repetitions"]) == REPETITIONS for c in resumed["cells"])
    assert sorted(m["name"] for m in resumed["models"]) == sorted(MODELS)
    assert sorted((d["framework"], d["model"]) for d in resumed["deployments"]) == \
        sorted(("reference", m) for m in MODELS)
    assert {name: (out / name).stat().st_mtime_ns for name in finished_files} == before  # never rewritten
    assert partial <= records_files(resumed)  # the interrupted trial ran again, into its own file
    assert {str(p.relative_to(out)) for p in (out / "requests").glob("*.parquet")} == records_files(resumed)
    assert processes_mentioning(str(out)) == []
    assert run_cli("report", str(out), timeout=120).returncode == 0


def test_a_failed_cell_is_retried_and_the_rest_kept(uninterrupted, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(uninterrupted, out)
    summary = summary_of(out)
    cell = summary["cells"][-1]
    lost = cell["repetitions"].pop()
    (out / lost["records_file"]).unlink()
    cell.update(status="failed", reason="the server exited with code -9")
    (out / "summary.json").write_text(json.dumps(summary))
    others = {name: (out / name).stat().st_mtime_ns for name in records_files(summary)}

    done = run_cli("run", "--resume", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "retrying reference / efficientnet-lite0 / 2 users, which failed: the server exited with code -9" \
        in done.stderr, done.stderr[-3000:]
    resumed = summary_of(out)
    assert trial_ids(resumed) == trial_ids(summary_of(uninterrupted))
    assert all(c["status"] == "ok" for c in resumed["cells"])
    assert (out / lost["records_file"]).exists()
    assert {name: (out / name).stat().st_mtime_ns for name in others} == others


@pytest.mark.parametrize(("args", "difference"), [
    (["STUDY"], "load.users: [1, 2] in {out}, [1, 5] now"),
    (["--repetitions", "3"], "load.repetitions: 2 in {out}, 3 now"),
])
def test_resume_refuses_a_changed_study_naming_the_keys(uninterrupted, tmp_path, args, difference):
    changed = write_study(tmp_path / "changed.yaml", users=[1, 5])
    before = snapshot(uninterrupted)
    done = run_cli("run", *[str(changed) if a == "STUDY" else a for a in args], "--resume", str(uninterrupted),
                   timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert difference.format(out=uninterrupted) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert snapshot(uninterrupted) == before


def test_resume_refuses_a_corrupt_summary_or_a_tune_folder_touching_nothing(uninterrupted, tmp_path):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(uninterrupted, corrupt)
    text = (corrupt / "summary.json").read_text()
    (corrupt / "summary.json").write_text(text[: len(text) // 2])
    tune = tmp_path / "tune"
    tune.mkdir()
    (tune / "tune.json").write_text("{}")
    for folder, reason in ((corrupt, f"{corrupt / 'summary.json'} is not valid JSON"), (tune, "tune folder")):
        before = snapshot(folder)
        done = run_cli("run", "--resume", str(folder), timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert reason in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert snapshot(folder) == before


def test_resuming_a_finished_study_runs_nothing(uninterrupted, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(uninterrupted, out)
    before = snapshot(out)
    done = run_cli("run", "--resume", str(out), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nothing to resume" in done.stderr
    assert snapshot(out) == before
