"""The smoke study end to end: real models, the real reference server, Locust, results, tables."""
import json
import re
import signal

import pytest

from conftest import cli_in_background, processes_mentioning, run_cli, signal_and_wait, wait_until


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "results"
    done = run_cli("run", "smoke", "--out", str(out), "--repetitions", "2", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


def test_smoke_study_writes_the_full_results_folder(smoke_results):
    out, _ = smoke_results
    for name in ("study.yaml", "environment.json", "summary.json", "tables/README.md"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema_version"] == 1 and summary["complete"] is True
    models = ["resnet50", "efficientnet-lite0", "wav2vec2", "wav2vec2-truncated", "bart-large-cnn"]
    assert sorted({c["model"] for c in summary["cells"]}) == sorted(models)
    # server.device auto: the CPU on this host, said in every cell, deployment, model, environment.json and console
    environment = json.loads((out / "environment.json").read_text())
    assert (environment["device"], environment["device_asked"], environment["gpus"]) == ("cpu", "auto", [])
    assert {c["device"] for c in summary["cells"]} == {d["device"] for d in summary["deployments"]} == {"cpu"}
    assert {m["device"] for m in summary["models"]} == {"cpu"}
    assert "device: cpu" in smoke_results[1].stdout + smoke_results[1].stderr
    for cell in summary["cells"]:
        assert cell["framework"] == "reference" and cell["status"] == "ok", cell
        assert cell["correct"]["ok"] is True, cell["correct"]
        assert len(cell["repetitions"]) == 2
        assert cell["throughput_rps"]["mean"] > 0 and cell["failed"] == 0
        low, high = cell["throughput_rps"]["ci95_low"], cell["throughput_rps"]["ci95_high"]
        assert low <= cell["throughput_rps"]["mean"] <= high
        for trial in cell["repetitions"]:
            assert (out / trial["records_file"]).is_file()
            # the reference server's own counters: inference time per request, server side
            assert trial["server_metrics"]["inference_ms_mean"] > 0
            # resource telemetry of the server's process tree and the load generator, in the window
            resources = trial["resources"]
            assert resources["samples"] >= 2
            assert resources["server_cpu_percent"]["mean"] > 5 and resources["server_rss_mb"]["max"] > 50
            assert resources["load_cpu_percent"]["max"] > 0
            assert resources["gpu_util_percent"] is None and resources["gpu_power_w"] is None  # no GPU here
            assert (out / trial["telemetry_file"]).read_text().startswith("t_ns,server_cpu_percent")
    for info in summary["models"]:
        assert info["inprocess_latency_ms"]["p50"] > 0
    for deployment in summary["deployments"]:  # evidence for the usability scorecard
        assert deployment["status"] == "ok" and deployment["startup_s"] > 0
        assert deployment["idle_rss_mb"] > 50 and deployment["package_files"] > 0


def test_tables_have_the_study_layout(smoke_results):
    out, _ = smoke_results
    csv = (out / "tables" / "resnet50-throughput.csv").read_text().splitlines()
    assert csv[0] == "Framework \\ Users,1,10"
    assert re.fullmatch(r"reference,[\d.]+,[\d.]+", csv[1])
    md = (out / "tables" / "wav2vec2-truncated-latency.md").read_text()
    assert "| Framework \\ Users | 1 | 10 |" in md and "| reference |" in md


def test_report_re_renders_from_saved_results(smoke_results):
    out, _ = smoke_results
    table = out / "tables" / "bart-large-cnn-latency_p99.csv"
    original = table.read_text()
    table.unlink()
    done = run_cli("report", str(out), timeout=120)
    assert done.returncode == 0, done.stderr
    assert table.read_text() == original
    assert "bart-large-cnn" in done.stdout


def test_no_process_outlives_the_study(smoke_results):
    out, _ = smoke_results
    assert processes_mentioning(str(out)) == []


def test_interrupted_run_stops_everything_and_keeps_finished_trials(tmp_path):
    out = tmp_path / "results"
    summary = out / "summary.json"

    def one_trial_saved_and_a_load_generator_running() -> bool:
        return summary.exists() and '"repetitions": [\n        {' in summary.read_text() \
            and any("locust_worker" in p for p in processes_mentioning(str(out)))

    with cli_in_background("run", "smoke", "--models", "resnet50,wav2vec2", "--duration", "3", "--repetitions",
                           "3", "--out", str(out)) as proc:
        wait_until(proc, one_trial_saved_and_a_load_generator_running)
        stderr = signal_and_wait(proc, signal.SIGINT)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    assert processes_mentioning(str(out)) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False
    finished = [t for c in summary["cells"] for t in c["repetitions"]]
    assert finished, "the trial that finished before Ctrl-C is kept"
    assert any(c["status"] == "failed" and "interrupted" in c["reason"] for c in summary["cells"])
    assert run_cli("report", str(out), timeout=120).returncode == 0
