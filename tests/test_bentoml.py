"""Real BentoML: `bentoml serve` of servingbench's @bentoml.service, its workers and its Prometheus metrics."""
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from conftest import (
    assert_answers_raw_bytes_like_the_model,
    assert_server_time,
    listening_addresses,
    processes_mentioning,
    run_resnet50_and_bart_study,
)
from servingbench.adapters import get_adapter
from servingbench.adapters.bentoml import BentoMLAdapter
from servingbench.adapters.http_metrics import get_text, prometheus_counters
from servingbench.config import load_study
from servingbench.load.transport import send_once
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed

pytestmark = pytest.mark.skipif(not BentoMLAdapter(load_study("smoke")).availability().ok,
                                reason="no bentoml: pip install -e '.[bentoml]' (./setup.sh does)")


def test_two_workers_answer_raw_bytes_like_the_model_count_them_and_listen_on_loopback_only(tmp_path):
    adapter = get_adapter("bentoml", load_study("smoke", {"server.workers": 2}))
    model = get_model("resnet50")
    loaded = model.load()
    with deployed(adapter, model, loaded, tmp_path / "run", 180) as live:
        assert len(psutil.Process(live.server.pid).children(recursive=True)) >= 2  # the workers
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}
        before = live.scrape_metrics()
        assert_answers_raw_bytes_like_the_model(live, adapter, model, loaded)
        after = live.scrape_metrics()
        assert after["requests_total"] - before["requests_total"] == 2  # both answers, the 400 too
        assert after["server_us_total"] > before["server_us_total"]
        scratch = live.launch.scratch_dirs
    assert processes_mentioning(str(tmp_path)) == []  # the arbiter and its workers (their --args name the model)
    assert not any(d.exists() for d in scratch)
    assert (tmp_path / "run" / "bentoml_home" / "prometheus_multiproc_dir").is_dir()  # its home: in the run folder


def test_adaptive_batching_batches_concurrent_requests_and_fails_only_the_bad_one(tmp_path):
    options = {"batching": True, "max_batch_size": 4, "max_latency_ms": 2000}
    adapter = get_adapter("bentoml", load_study("smoke", {"server.options": {"bentoml": options}}))
    model = get_model("resnet50")
    loaded = model.load()
    samples = model.samples()[:3]
    requests = [adapter.request(model, s) for s in samples] * 3
    requests.append(requests[0].model_copy(update={"body": b"not an image"}))
    with deployed(adapter, model, loaded, tmp_path / "run", 180) as live:
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(lambda r: send_once(live.launch.base_url, r, 60), requests))
        batch_sizes = prometheus_counters(get_text(f"{live.launch.base_url}/metrics"), {
            "bentoml_service_adaptive_batch_size_count": "batches",
            "bentoml_service_adaptive_batch_size_sum": "inputs"}, {"method_name": "predict_batch"})
        metrics = live.scrape_metrics()
    expected = {s.name: loaded.predict(s.data)["top5"][0][0] for s in samples}
    for request, (status, body, error) in zip(requests[:-1], answers[:-1]):
        assert error is None, body[:300]
        assert adapter.decode(model, status, body)["top5"][0][0] == expected[request.sample]
    assert answers[-1][0] == 400
    assert batch_sizes["inputs"] == len(requests) and batch_sizes["batches"] < len(requests)  # some were batched
    assert metrics["requests_total"] == len(requests) and metrics["server_us_total"] > 0  # the front's /predict
    assert processes_mentioning(str(tmp_path)) == []  # the front, the model's workers


def test_a_study_serves_resnet50_and_bart_correctly_under_load_with_server_time(tmp_path):
    cells, _ = run_resnet50_and_bart_study("bentoml", tmp_path)
    for cell in cells:
        assert_server_time(cell)  # BentoML's /metrics
    assert not list(Path(tempfile.gettempdir()).glob("servingbench-bentoml-*"))