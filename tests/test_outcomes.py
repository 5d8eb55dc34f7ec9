"""What the user types, and what the exit code and results say: defaults from a fresh working directory,
relative folders, every exit code, servers that die or stall, trials in which nothing succeeded."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import cli_in_background, processes_mentioning, run_cli, signal_and_wait, start_delay_server, wait_until

ONE_CELL = ["--frameworks", "reference", "--models", "resnet50", "--users", "1", "--repetitions", "1",
            "--duration", "2", "--warmup", "0"]


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_run_with_its_defaults_from_a_fresh_working_directory(tmp_path):
    """As README shows it, no --out: results/<timestamp> under the user's working directory."""
    done = run_cli("run", "smoke", *ONE_CELL, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = list((tmp_path / "results").iterdir())
    cell = summary_of(folder)["cells"][0]
    assert cell["status"] == "ok" and cell["correct"]["ok"] is True
    assert f"results: {folder}" in done.stderr  # the absolute path, where the user can find it


def test_relative_out_works_for_every_framework_launched_here(tmp_path):
    """Each server runs in its own folder: relative paths handed to it used to fail every cell."""
    done = run_cli("run", "smoke", "--frameworks", "reference,torchserve,triton", "--models", "resnet50",
                   "--users", "1", "--repetitions", "1", "--duration", "2", "--warmup", "0",
                   "--out", "relative/out", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = summary_of(tmp_path / "relative" / "out")["cells"]
    assert {c["framework"]: (c["status"], c["correct"]["ok"]) for c in cells} == {
        "reference": ("ok", True), "torchserve": ("ok", True), "triton": ("ok", True)}


def test_a_launch_spec_refuses_relative_paths(tmp_path, monkeypatch):
    from servingbench.launch.contracts import LaunchSpec

    monkeypatch.chdir(tmp_path)
    for folder in ("results/x/model_store", "work/repo"):
        (tmp_path / folder).mkdir(parents=True)
    ok = LaunchSpec(base_url="http://127.0.0.1:1", ready_url="http://127.0.0.1:1/ready", cwd=tmp_path,
                    argv=("tritonserver", f"--model-repository={tmp_path}", "-v", f"{tmp_path}:/models:ro",
                          "docker://nvcr.io/x", "nvcr.io/nvidia/tritonserver:24.10-py3", "tensorflow/serving:2.19.0"))
    assert ok.cwd == tmp_path
    for argv, cwd in [(("server", "--model-store", "results/x/model_store"), tmp_path),
                      (("server", "--model-repository=work/repo"), tmp_path),
                      (("docker", "-v", "work/repo:/models:ro"), tmp_path),
                      (("server",), Path("results/run"))]:
        with pytest.raises(ValueError, match="absolute paths only"):
            LaunchSpec(base_url="http://x", ready_url="http://x", argv=argv, cwd=cwd)


def test_an_slo_gate_that_holds_exits_0_and_one_breached_exits_3(tmp_path):
    held = run_cli("run", "smoke", *ONE_CELL, "--slo", "p99_ms<=60000", "--slo", "failures_per_s==0",
                   "--out", str(tmp_path / "held"), timeout=300)
    assert held.returncode == 0, held.stderr[-3000:]
    breached = run_cli("run", "smoke", *ONE_CELL, "--slo", "p50_ms<=0.001", "--out", str(tmp_path / "breached"),
                       timeout=300)
    assert breached.returncode == 3, breached.stderr[-3000:]
    assert "SLO breached" in breached.stderr and "p50_ms<=0.001" in breached.stderr
    verdicts = summary_of(tmp_path / "breached")["cells"][0]["slo"]
    assert [v["passed"] for v in verdicts] == [False]


def test_a_trial_whose_every_answer_is_503_is_a_failed_cell(tmp_path):
    proc, url = start_delay_server(tmp_path, 5)
    try:
        done = run_cli("load", f"{url}/status/503", "--users", "2", "--duration", "2", "--warmup", "0",
                       "--out", str(tmp_path / "r"), timeout=120)
    finally:
        proc.stop()
    assert done.returncode == 1, done.stderr[-2000:]
    cell = summary_of(tmp_path / "r")["cells"][0]
    assert cell["status"] == "failed" and cell["reason"].startswith("all ") and "requests failed: HTTP 503" in \
        cell["reason"]
    assert cell["throughput_rps"]["n"] == 0  # nothing measured: no figure to publish
    assert "failed:" in done.stderr


def test_a_trial_whose_every_request_times_out_is_a_failed_cell(tmp_path):
    proc, url = start_delay_server(tmp_path, 1000)  # answers after 1 s; each request gives up after 0.3 s
    try:
        done = run_cli("load", f"{url}/predict", "--users", "2", "--duration", "1", "--warmup", "0",
                       "--timeout", "0.3", "--out", str(tmp_path / "r"), timeout=120)
    finally:
        proc.stop()
    assert done.returncode == 1, done.stderr[-2000:]
    cell = summary_of(tmp_path / "r")["cells"][0]
    assert cell["status"] == "failed" and "requests failed: timeout" in cell["reason"]


def test_a_paused_server_is_a_stall_warning_with_its_time(tmp_path):
    proc, url = start_delay_server(tmp_path, 20)
    out = tmp_path / "r"

    def pause():  # 1.5 s into the trial, for 2.5 s
        deadline = time.monotonic() + 60
        while not any("locust_worker" in p for p in processes_mentioning(str(out))) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(2.5)
        os.kill(proc.pid, signal.SIGCONT)

    pauser = threading.Thread(target=pause)
    pauser.start()
    try:
        done = run_cli("load", f"{url}/predict", "--users", "2", "--duration", "6", "--warmup", "0",
                       "--out", str(out), timeout=120)
    finally:
        pauser.join()
        proc.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    trial = summary_of(out)["cells"][0]["repetitions"][0]
    assert 2.3 <= trial["longest_silence_ms"] / 1000 <= 3.5
    assert 0.5 <= trial["longest_silence_at_s"] <= 3.0
    stall = [w for w in trial["warnings"] if w.startswith("stall: no answer for")]
    assert stall, trial["warnings"]
    assert "stall: no answer for" in done.stderr


def _kill_the_server_mid_cell(tmp_path: Path, framework: str, server_cmdline: str, model: str = "resnet50"):
    """Starts a study, SIGKILLs the server once the first trial is saved; returns (exit code, stderr, summary)."""
    out = tmp_path / "results"
    summary = out / "summary.json"

    def one_trial_saved() -> bool:
        return summary.exists() and any(c["repetitions"] for c in json.loads(summary.read_text())["cells"])

    with cli_in_background("run", "smoke", "--frameworks", framework, "--models", model, "--users", "1,2",
                           "--repetitions", "3", "--duration", "2", "--warmup", "0", "--out", str(out)) as proc:
        wait_until(proc, one_trial_saved, timeout_s=300)
        victims = [line.split(":", 1)[0] for line in processes_mentioning(str(out)) if server_cmdline in line]
        assert victims, "the server should be running now"
        for pid in victims:
            os.kill(int(pid), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=300)
    assert processes_mentioning(str(out)) == []
    return proc.returncode, stderr, summary_of(out)


@pytest.mark.parametrize("framework, server_cmdline", [
    ("reference", "servingbench.adapters.reference_server"),
    ("torchserve", "org.pytorch.serve.ModelServer"),  # TorchServe's Java frontend
])
def test_a_server_killed_mid_cell_fails_the_cell_and_is_never_averaged(tmp_path, framework, server_cmdline):
    code, stderr, summary = _kill_the_server_mid_cell(tmp_path, framework, server_cmdline)
    assert code == 1, stderr[-3000:]
    cells = summary["cells"]
    assert all(c["status"] == "failed" for c in cells), [(c["users"], c["status"]) for c in cells]
    died = next(c for c in cells if any(t["server_problem"] for t in c["repetitions"]))
    assert "during trial" in died["reason"]
    assert died["log_tail"].strip(), "the server log's last lines come with the reason"
    assert "exited with code" in died["reason"] or "stopped answering" in died["reason"]
    dead = [t for t in died["repetitions"] if t["server_problem"]]
    assert len(dead) == 1  # the study stopped using the server at once: no run against a dead port
    measured = [t for t in died["repetitions"] if not t["server_problem"] and t["ok"] > 0]
    assert died["throughput_rps"]["n"] == len(measured)
    later = [c for c in cells if c is not died and not c["repetitions"]]
    assert later and all("during trial" in c["reason"] for c in later)
    assert "failed:" in stderr


def test_sigterm_stops_everything_and_exits_143(tmp_path):
    out = tmp_path / "results"
    with cli_in_background("run", "smoke", *ONE_CELL[:-4], "--duration", "20", "--warmup", "0",
                           "--out", str(out)) as proc:
        wait_until(proc, lambda: any("locust_worker" in p for p in processes_mentioning(str(out))))
        stderr = signal_and_wait(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-2000:]
    assert processes_mentioning(str(out)) == []
    assert summary_of(out)["complete"] is False


def test_the_load_generator_processes_never_import_torch():
    code = ("import sys, servingbench.load.locust_worker, servingbench.load.loadgen_worker; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_an_answer_that_cannot_be_decoded_marks_the_sample_wrong(tmp_path):
    """A 200 answer that isn't what the adapter expects is a wrong answer with the reason, not a crash."""
    from servingbench.adapters import get_adapter
    from servingbench.config import load_study
    from servingbench.models import get_model
    from servingbench.orchestrate.correctness import check_correctness

    proc, url = start_delay_server(tmp_path, 1)  # answers 200 with a body that is not the reference's JSON
    try:
        model = get_model("resnet50")
        samples = model.samples()[:2]
        verdict = check_correctness(get_adapter("reference", load_study("smoke")), model, samples,
                                    {s.name: {} for s in samples}, url, 10)
    finally:
        proc.stop()
    assert verdict.ok is False and verdict.samples_checked == 1
    assert f"sample {samples[0].name}: the 200 answer could not be decoded (JSONDecodeError" in verdict.reason


def test_a_network_that_cannot_be_traced_is_unsupported_with_the_tracers_reason(tmp_path):
    import torch

    from servingbench.errors import UnsupportedModel
    from servingbench.exports.onnx import export_onnx
    from servingbench.exports.torchscript import export_torchscript
    from servingbench.models import get_model

    class AnswersInWords(torch.nn.Module):
        def forward(self, x):
            return "a string is no tensor"

    model = get_model("resnet50")
    loaded = model.load()
    loaded.traceable = lambda: AnswersInWords()  # an instance attribute: this loaded model only
    with pytest.raises(UnsupportedModel, match="can't be traced to TorchScript: RuntimeError"):
        export_torchscript(model, loaded, tmp_path / "model.pt")
    with pytest.raises(UnsupportedModel, match="can't be exported to ONNX"):
        export_onnx(model, loaded, tmp_path / "model.onnx", "INPUT__0", "OUTPUT__0")


def test_the_readme_main_command_as_a_new_user_types_it(tmp_path):
    """`servingbench run`, exactly as README shows it: the built-in quick study (real sizes on reference,
    TorchServe and Triton; about 9 minutes here), no flags, from a fresh working directory."""
    done = run_cli("run", cwd=tmp_path, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = list((tmp_path / "results").iterdir())
    cells = summary_of(folder)["cells"]
    assert len(cells) == 3 * 3 * 2
    assert all(c["status"] == "ok" and c["correct"]["ok"] is True for c in cells), \
        [(c["framework"], c["model"], c["users"], c["status"], c["reason"]) for c in cells if c["status"] != "ok"]
