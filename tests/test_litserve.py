"""Real LitServe: servingbench's LitAPI run by a LitServer, its process tree and its raw-bytes requests."""
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from conftest import (
    assert_answers_raw_bytes_like_the_model,
    listening_addresses,
    processes_mentioning,
    run_resnet50_and_bart_study,
)
from servingbench.adapters import get_adapter
from servingbench.adapters.litserve import LitServeAdapter
from servingbench.config import load_study
from servingbench.load.transport import send_once
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed

pytestmark = pytest.mark.skipif(not LitServeAdapter(load_study("smoke")).availability().ok,
                                reason="no litserve: pip install -e '.[litserve]' (./setup.sh does)")


def processes_working_in(folder: Path) -> list[str]:
    """Live processes whose working directory is under `folder`: LitServe's spawned inference workers
    don't name the run folder on their command line, but they run in it."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        if proc.info["cwd"] and Path(proc.info["cwd"]).is_relative_to(folder):
            found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])}")
    return found


def test_two_workers_answer_raw_bytes_like_the_model_and_listen_on_loopback_only(tmp_path):
    adapter = get_adapter("litserve", load_study("smoke", {"server.workers": 2}))
    model = get_model("resnet50")
    loaded = model.load()
    with deployed(adapter, model, loaded, tmp_path / "run", 180) as live:
        tree = psutil.Process(live.server.pid).children(recursive=True)
        assert len(tree) >= 4  # two inference workers and two uvicorn processes
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}  # not LitServe's default 0.0.0.0
        assert_answers_raw_bytes_like_the_model(live, adapter, model, loaded)
        scratch = live.launch.scratch_dirs
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert processes_mentioning(str(tmp_path)) == [] and processes_working_in(tmp_path) == []
    assert not any(d.exists() for d in scratch)
    assert not (tmp_path / "run" / "client.py").exists()  # LitServe's default writes one into the working folder


def test_batching_answers_each_request_like_the_model(tmp_path):
    options = {"max_batch_size": 4, "batch_timeout_s": 0.5}
    adapter = get_adapter("litserve", load_study("smoke", {"server.options": {"litserve": options}}))
    model = get_model("resnet50")
    loaded = model.load()
    samples = model.samples()[:3]
    requests = [adapter.request(model, s) for s in samples] * 2
    with deployed(adapter, model, loaded, tmp_path / "run", 180) as live:
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(lambda r: send_once(live.launch.base_url, r, 60), requests))
    expected = {s.name: loaded.predict(s.data)["top5"][0][0] for s in samples}
    for request, (status, body, error) in zip(requests, answers):
        assert error is None, body[:300]
        assert adapter.decode(model, status, body)["top5"][0][0] == expected[request.sample]


def test_a_study_serves_resnet50_and_bart_correctly_under_load(tmp_path):
    _, out = run_resnet50_and_bart_study("litserve", tmp_path)  # no client.py where the user ran it
    assert processes_working_in(out) == []
    assert not list(Path(tempfile.gettempdir()).glob("servingbench-litserve-*"))