"""The do-it-yourself baseline: a real uvicorn serving the model through FastAPI."""
import json

import psutil
import pytest

from conftest import (
    assert_answers_raw_bytes_like_the_model,
    listening_addresses,
    processes_mentioning,
    run_resnet50_and_bart_study,
)
from servingbench.adapters import get_adapter
from servingbench.adapters.fastapi import FastAPIAdapter
from servingbench.config import load_study
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed

pytestmark = pytest.mark.skipif(not FastAPIAdapter(load_study("smoke")).availability().ok,
                                reason="no fastapi/uvicorn: ./setup.sh installs them")


def test_two_workers_answer_like_the_model_and_listen_on_loopback_only(tmp_path):
    adapter = get_adapter("fastapi", load_study("smoke", {"server.workers": 2}))
    model = get_model("resnet50")
    loaded = model.load()
    with deployed(adapter, model, loaded, tmp_path / "run", 180) as live:
        assert len(psutil.Process(live.server.pid).children(recursive=True)) >= 2  # the workers
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}
        assert_answers_raw_bytes_like_the_model(live, adapter, model, loaded)
    assert processes_mentioning(str(tmp_path)) == []


def test_a_study_serves_resnet50_and_bart_correctly_under_load_in_onnxruntime(tmp_path):
    _, out = run_resnet50_and_bart_study("fastapi", tmp_path, "--runtime", "onnxruntime")
    summary = json.loads((out / "summary.json").read_text())
    # BART's generate() loop can't be exported: it is served eager, and the results say so
    assert {d["model"]: d["runtime"] for d in summary["deployments"]} == {"resnet50": "onnxruntime",
                                                                          "bart-large-cnn": "eager"}