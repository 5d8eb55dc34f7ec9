"""Real TorchServe (Java frontend + Python workers) for every model of the zoo, at tiny sizes."""
import json
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import launched, processes_mentioning, run_cli
from servingbench.adapters import ADAPTERS
from servingbench.adapters.served_model import MANIFEST
from servingbench.adapters.torchserve import TorchServeAdapter
from servingbench.config import load_study
from servingbench.display import Display
from servingbench.orchestrate.study import StudyRunner

MODELS = ["resnet50", "efficientnet-lite0", "wav2vec2", "wav2vec2-truncated", "bart-large-cnn"]

pytestmark = pytest.mark.skipif(not TorchServeAdapter(load_study("smoke")).availability().ok,
                                reason="TorchServe or Java missing: ./setup.sh installs both")


def test_every_model_packaged_served_correct_loaded_and_stopped(tmp_path):
    out = tmp_path / "results"
    done = run_cli("run", "smoke", "--frameworks", "torchserve", "--users", "2", "--repetitions", "1",
                   "--duration", "2", "--warmup", "1", "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(c["model"] for c in summary["cells"]) == sorted(MODELS)
    for cell in summary["cells"]:
        assert cell["status"] == "ok" and cell["correct"]["ok"] is True, cell
        assert cell["throughput_rps"]["mean"] > 0 and cell["failed"] == 0
        metrics = cell["repetitions"][0]["server_metrics"]
        # scraped from TorchServe's Prometheus endpoint before and after the trial
        assert metrics["requests_total"] >= cell["repetitions"][0]["ok"]
        assert 0 < metrics["inference_ms_mean"] < metrics["server_ms_mean"]
        assert metrics["queue_ms_mean"] >= 0
    work = out / "work" / "torchserve"
    assert (work / "resnet50" / "model_store" / "resnet50.mar").is_file()
    config = (work / "resnet50" / "config.properties").read_text()
    assert "inference_address=http://127.0.0.1:" in config and "metrics_mode=prometheus" in config
    assert processes_mentioning(str(out)) == []  # no java frontend, no Python worker left
    assert not list(Path(tempfile.gettempdir()).glob("servingbench-ts-*"))  # its short temp folders removed
    assert not [p for p in processes_mentioning("org.pytorch.serve.ModelServer") if str(tmp_path) in p]


def post(url, data, headers):
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_real_labels_and_token_auth(tmp_path):
    with launched("torchserve", "efficientnet-lite0", {"token_auth": True}, tmp_path) as (adapter, model, launch):
        samples = {s.name: s for s in model.samples()}
        labels = {}
        for name in ("chelsea.jpg", "coffee.jpg"):
            request = adapter.request(model, samples[name])
            assert request.headers["Authorization"].startswith("Bearer ")
            answer = post(launch.base_url + request.path, request.body, request.headers)
            labels[name] = answer["top5"][0][0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(launch.base_url + request.path, request.body, {"Content-Type": "image/jpeg"})
    assert 281 <= labels["chelsea.jpg"] <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert labels["coffee.jpg"] == 967  # espresso
    assert refused.value.code in (400, 401, 403)
    assert processes_mentioning(str(tmp_path)) == []


class BrokenHandlerTorchServe(TorchServeAdapter):
    """Test-only: real TorchServe whose archive names a model the handler can't load."""

    name = "torchserve-broken-handler"

    def write_files(self, model, loaded, files_dir):
        written = super().write_files(model, loaded, files_dir)
        manifest = json.loads((files_dir / MANIFEST).read_text())
        (files_dir / MANIFEST).write_text(json.dumps({**manifest, "model": "no-such-model"}))
        return written


def test_a_model_that_fails_to_load_fails_its_cell_and_the_study_goes_on(tmp_path, monkeypatch):
    monkeypatch.setitem(ADAPTERS, BrokenHandlerTorchServe.name, f"{__name__}:BrokenHandlerTorchServe")
    study = load_study("smoke", {"frameworks": [BrokenHandlerTorchServe.name, "torchserve"],
                                 "models": ["efficientnet-lite0"], "load.users": [1], "load.repetitions": 1,
                                 "load.duration_s": 1, "load.warmup_s": 0.5, "server.startup_timeout_s": 120})
    summary = StudyRunner(study, tmp_path / "results", Display()).run()
    broken, working = summary.cells
    assert broken.status == "failed" and "will not get ready" in broken.reason
    assert "no-such-model" in broken.log_tail  # the server's own words, for the user
    assert working.status == "ok" and working.correct.ok
    assert processes_mentioning(str(tmp_path)) == []


def test_requests_beyond_the_job_queue_are_503_failures(tmp_path):
    study = tmp_path / "queue.yaml"
    study.write_text(yaml.safe_dump({
        "frameworks": ["torchserve"], "models": ["resnet50"], "size": "tiny",
        "load": {"users": [12], "repetitions": 1, "duration_s": 3, "warmup_s": 0.5},
        "server": {"options": {"torchserve": {"job_queue_size": 2}}}}))
    out = tmp_path / "results"
    done = run_cli("run", str(study), "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    cell = json.loads((out / "summary.json").read_text())["cells"][0]
    trial = cell["repetitions"][0]
    assert trial["failed"] > 0 and trial["ok"] > 0
    assert set(trial["errors"]) == {"HTTP 503"}
    assert cell["failures_per_s"]["mean"] > 0
