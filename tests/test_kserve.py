"""Real KServe: servingbench's kserve.Model in KServe's ModelServer, from its layered environment."""
import json
import subprocess

import psutil
import pytest

from conftest import assert_server_time, listening_addresses, processes_mentioning, run_resnet50_and_bart_study
from servingbench.adapters import get_adapter
from servingbench.adapters.kserve import KServeAdapter
from servingbench.config import load_study
from servingbench.launch.venvs import venv_dir
from servingbench.load.transport import send_once
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed

pytestmark = pytest.mark.skipif(not KServeAdapter(load_study("smoke")).availability().ok,
                                reason="no KServe environment: servingbench install kserve (./setup.sh does)")

# The request decoded as KServe's REST endpoints do (V2: FastAPI parses the JSON into KServe's InferenceRequest
# first; then the data plane), then the server code takes the samples out.
DECODE_IN_KSERVE = """
import sys
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from servingbench.adapters.kserve_server import request_bodies
body = sys.stdin.buffer.read()
if sys.argv[1] == "v2":
    body = InferenceRequest.model_validate_json(body)
request, _ = DataPlane(model_registry=ModelRepository()).decode(
    body, {"content-type": "application/json"}, protocol_version=sys.argv[1], model_name="m")
sys.stdout.buffer.write(request_bodies(request)[0])
"""


def listening_ports(pid: int) -> set[int]:
    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return {c.laddr.port for p in tree for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


@pytest.mark.parametrize("protocol", ["v1", "v2"])
@pytest.mark.parametrize("model_name", ["resnet50", "bart-large-cnn"])
def test_a_request_decodes_to_the_sample_bytes_in_kserve(protocol, model_name):
    adapter = get_adapter("kserve", load_study("smoke", {"server.options": {"kserve": {"protocol": protocol}}}))
    model = get_model(model_name)
    sample = model.samples()[0]
    done = subprocess.run([adapter.python, "-c", DECODE_IN_KSERVE, protocol], input=adapter.request(model, sample).body,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == sample.data


def test_two_workers_answer_v1_like_the_model_on_loopback_only_without_grpc(tmp_path):
    study = load_study("smoke", {"server.workers": 2, "server.options": {"kserve": {"protocol": "v1"}}})
    adapter = get_adapter("kserve", study)
    model = get_model("resnet50")
    loaded = model.load()
    with deployed(adapter, model, loaded, tmp_path / "run", 240) as live:
        assert len(psutil.Process(live.server.pid).children(recursive=True)) >= 2  # the uvicorn workers
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}  # not KServe's hard-coded 0.0.0.0
        assert listening_ports(live.server.pid) == {live.ports.http}  # gRPC off
        sample = model.samples()[0]
        request = adapter.request(model, sample)
        for _ in range(2):  # both workers, likely
            status, body, error = send_once(live.launch.base_url, request, 60)
            assert error is None, body[:300]
            assert adapter.decode(model, status, body)["top5"][0][0] == loaded.predict(sample.data)["top5"][0][0]
        bad_body = json.dumps({"instances": [{"b64": "bm90IGFuIGltYWdl"}]}).encode()  # "not an image"
        bad_status, _, bad_error = send_once(live.launch.base_url, request.model_copy(update={"body": bad_body}), 30)
        assert bad_status == 400 and bad_error == "HTTP 400"
        assert live.scrape_metrics() == {}  # per-worker registries: no consistent counters
    assert processes_mentioning(str(tmp_path)) == []
    assert processes_mentioning(str(venv_dir("kserve"))) == []  # its spawned workers name only their python


def test_a_study_serves_resnet50_and_bart_correctly_under_load_with_server_time(tmp_path):
    cells, _ = run_resnet50_and_bart_study("kserve", tmp_path)
    for cell in cells:
        assert_server_time(cell, split=True)  # KServe's /metrics
    assert processes_mentioning(str(venv_dir("kserve"))) == []  # its spawned workers name only their python