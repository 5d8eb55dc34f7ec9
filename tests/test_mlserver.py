"""Real MLServer: `mlserver start` of servingbench's custom runtime, from its layered environment."""
import subprocess
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from conftest import assert_server_time, listening_addresses, processes_mentioning, run_resnet50_and_bart_study
from servingbench.adapters import get_adapter, kserve_v2
from servingbench.adapters.mlserver import MLServerAdapter
from servingbench.config import load_study
from servingbench.launch.venvs import venv_dir
from servingbench.load.transport import send_once
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed

pytestmark = pytest.mark.skipif(not MLServerAdapter(load_study("smoke")).availability().ok,
                                reason="no MLServer environment: servingbench install mlserver (./setup.sh does)")

# MLServer parses the request and its runtime decodes the input, in MLServer's environment.
DECODE_IN_MLSERVER = """
import sys
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest
from servingbench.adapters.mlserver_runtime import ServedModelRuntime
runtime = ServedModelRuntime(ModelSettings(name="m", implementation=ServedModelRuntime))
sys.stdout.buffer.write(runtime.request_bodies(InferenceRequest.model_validate_json(sys.stdin.buffer.read()))[0])
"""


@pytest.mark.parametrize("model_name", ["resnet50", "bart-large-cnn"])
def test_a_v2_request_decodes_to_the_sample_bytes_in_mlserver(model_name):
    adapter = get_adapter("mlserver", load_study("smoke"))
    model = get_model(model_name)
    sample = model.samples()[0]
    done = subprocess.run([adapter.python, "-c", DECODE_IN_MLSERVER], input=adapter.request(model, sample).body,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == sample.data


def test_two_workers_batch_answer_like_the_model_count_requests_and_listen_on_loopback_only(tmp_path):
    options = {"max_batch_size": 4, "max_batch_time": 0.05}
    adapter = get_adapter("mlserver", load_study("smoke", {"server.workers": 2, "server.options": {"mlserver": options}}))
    model = get_model("resnet50")
    loaded = model.load()
    with deployed(adapter, model, loaded, tmp_path / "run", 240) as live:
        assert len(psutil.Process(live.server.pid).children(recursive=True)) >= 2  # the parallel workers
        # MLServer always starts gRPC too: on 127.0.0.1 as well
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}
        before = live.scrape_metrics()
        sample = model.samples()[0]
        request = adapter.request(model, sample)
        with ThreadPoolExecutor(4) as pool:  # concurrent: MLServer's adaptive batching groups them
            answers = list(pool.map(lambda _: send_once(live.launch.base_url, request, 60), range(4)))
        expected = loaded.predict(sample.data)["top5"][0][0]
        for status, body, error in answers:
            assert error is None, body[:300]
            assert adapter.decode(model, status, body)["top5"][0][0] == expected
        bad_body, _ = kserve_v2.encode_sample(b"not an image")
        bad_status, _, bad_error = send_once(live.launch.base_url, request.model_copy(update={"body": bad_body}), 30)
        assert bad_status == 400 and bad_error == "HTTP 400"
        after = live.scrape_metrics()
        assert after["requests_total"] - before["requests_total"] == 5  # every answer, the 400 too
        assert after["server_us_total"] - before["server_us_total"] >= \
            after["model_infer_us_total"] - before["model_infer_us_total"] > 0
    assert processes_mentioning(str(tmp_path)) == []
    assert processes_mentioning(str(venv_dir("mlserver"))) == []  # its spawned workers name only their python
    assert (tmp_path / "run" / "mlserver" / "metrics").is_dir()  # its Prometheus files: in the run folder


def test_a_study_serves_resnet50_and_bart_correctly_under_load_with_server_time(tmp_path):
    cells, _ = run_resnet50_and_bart_study("mlserver", tmp_path)
    for cell in cells:
        assert_server_time(cell)  # MLServer's metrics port
    assert processes_mentioning(str(venv_dir("mlserver"))) == []  # its spawned workers name only their python