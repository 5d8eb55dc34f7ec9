"""Ray Serve: the model in a Serve deployment on a private local Ray; its metrics; nothing of Ray left after."""
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from conftest import assert_server_time, listening_addresses, processes_mentioning, run_resnet50_and_bart_study
from servingbench.adapters import get_adapter
from servingbench.adapters.rayserve import RayServeAdapter
from servingbench.config import load_study
from servingbench.launch.scratch import scratch_dir
from servingbench.load.transport import send_once
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed

pytestmark = pytest.mark.skipif(not RayServeAdapter(load_study("smoke")).availability().ok,
                                reason="no ray[serve]: pip install -e '.[rayserve]' (./setup.sh does)")


def processes_using(marker: str) -> list[str]:
    """Live processes whose command line or environment names `marker` (Ray's scratch folder is in every Ray
    process's environment; its workers retitle themselves, ray::ServeReplica..., and name no folder)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "environ", "status"]):
        text = " ".join(process.info["cmdline"] or []) + " ".join((process.info["environ"] or {}).values())
        if marker in text and process.info["status"] != psutil.STATUS_ZOMBIE and process.pid != os.getpid():
            found.append(f"{process.pid}: {' '.join(process.info['cmdline'] or [])[:100]}")
    return found


def wait_until_gone(marker: str, timeout_s: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (left := processes_using(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_batched_replicas_answer_like_the_model_on_loopback_only_and_die_with_a_killed_server(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # Ray must leave nothing there (e.g. ~/.ray/auth_token)
    adapter = get_adapter("rayserve", load_study("smoke", {"server.workers": 2, "server.options": {"rayserve": {
        "max_batch_size": 4, "max_ongoing_requests": 8, "batch_wait_timeout_s": 0.05}}}))
    model = get_model("resnet50")
    loaded = model.load()
    scratch = scratch_dir("ray", tmp_path / "run")
    with deployed(adapter, model, loaded, tmp_path / "run", 300) as live:
        tree = psutil.Process(live.server.pid).children(recursive=True)
        assert sum("ServeReplica" in " ".join(p.cmdline()) for p in tree) == 2
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}
        sample = model.samples()[0]
        good = adapter.request(model, sample)
        bad = good.model_copy(update={"body": b"not an image"})
        with ThreadPoolExecutor(6) as pool:  # together, so that Serve batches them: a bad one fails alone
            answers = list(pool.map(lambda r: send_once(live.launch.base_url, r, 60), [good] * 5 + [bad]))
        expected = loaded.predict(sample.data)["top5"][0][0]
        for status, body, error in answers[:5]:
            assert error is None, body[:300]
            assert adapter.decode(model, status, body)["top5"][0][0] == expected
        assert answers[5][0] == 400 and answers[5][2] == "HTTP 400"
        metrics = live.scrape_metrics()
        assert metrics["requests_total"] >= 6, metrics
        assert metrics["server_us_total"] > metrics["inference_us_total"] > 0, metrics
        assert processes_using(str(scratch))
        os.kill(live.server.pid, signal.SIGKILL)  # the harshest end: Ray must still go with it
        assert wait_until_gone(str(scratch)) == []
    assert processes_mentioning(str(tmp_path)) == [] and not scratch.exists()
    assert not (tmp_path / "home").exists()


def test_a_study_serves_resnet50_and_bart_correctly_under_load_with_server_metrics(tmp_path):
    cells, _ = run_resnet50_and_bart_study("rayserve", tmp_path)
    for cell in cells:
        assert_server_time(cell, split=True)  # Ray's metrics agent
    # The launcher signals the server's process group; Ray's processes are not in it, and must end as well.
    assert processes_using("servingbench-ray-") == []