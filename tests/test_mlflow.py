"""A real `mlflow models serve` (MLflow 3's scoring server, uvicorn workers) serving the pyfunc model."""
import dataclasses
import json

import psutil
import pytest

from conftest import listening_addresses, processes_mentioning, run_resnet50_and_bart_study
from servingbench.adapters import get_adapter
from servingbench.adapters.mlflow import MLflowAdapter
from servingbench.config import load_study
from servingbench.launch.venvs import venv_python
from servingbench.load.transport import send_once
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed

pytestmark = pytest.mark.skipif(not MLflowAdapter(load_study("smoke")).availability().ok,
                                reason="no MLflow environment: servingbench install mlflow (./setup.sh does)")

# Every process of the server (the mlflow CLI, uvicorn, its workers) runs this environment's python.
MLFLOW_PYTHON = str(venv_python("mlflow"))


def test_two_workers_answer_like_the_model_and_listen_on_loopback_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # where MLflow's telemetry would write
    adapter = get_adapter("mlflow", load_study("smoke", {"server.workers": 2}))
    model = get_model("resnet50")
    loaded = model.load()
    with deployed(adapter, model, loaded, tmp_path / "run", 180) as live:
        tree = [psutil.Process(live.server.pid), *psutil.Process(live.server.pid).children(recursive=True)]
        assert sum("multiprocessing.spawn" in " ".join(p.cmdline()) for p in tree) == 2  # the workers
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}
        assert (live.artifact.path / "MLmodel").is_file()
        sample = model.samples()[0]
        status, body, error = send_once(live.launch.base_url, adapter.request(model, sample), 30)
        assert error is None, body[:300]
        assert adapter.decode(model, status, body)["top5"][0][0] == loaded.predict(sample.data)["top5"][0][0]
        not_an_image = adapter.request(model, dataclasses.replace(sample, data=b"not an image"))
        bad_status, bad_body, _ = send_once(live.launch.base_url, not_an_image, 30)
        assert bad_status == 400 and json.loads(bad_body)["error_code"] == "BAD_REQUEST"
    assert not [p for p in tree if p.is_running()]
    assert processes_mentioning(str(tmp_path)) == []
    assert not (tmp_path / "config").exists()


def test_a_study_serves_resnet50_and_bart_correctly_under_load(tmp_path):
    run_resnet50_and_bart_study("mlflow", tmp_path)
    assert processes_mentioning(MLFLOW_PYTHON) == []  # its uvicorn workers name only their python