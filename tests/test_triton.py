"""Real tritonserver (bundled in nvidia-pytriton, python backend) for every model, over HTTP and gRPC."""
import json
import os

import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig, ModelInstanceGroup

from conftest import launched, processes_mentioning, run_cli
from servingbench.adapters import get_adapter
from servingbench.adapters.triton import TritonAdapter
from servingbench.config import load_study
from servingbench.errors import ServingbenchError
from servingbench.launch.containers import containerised
from servingbench.load.transport import send_once
from servingbench.models import get_model

MODELS = ["resnet50", "efficientnet-lite0", "wav2vec2", "wav2vec2-truncated", "bart-large-cnn"]

pytestmark = pytest.mark.skipif(not TritonAdapter(load_study("smoke")).availability().ok,
                                reason="no tritonserver: ./setup.sh installs the bundled one")


def read_config(path) -> ModelConfig:
    """config.pbtxt parsed as Triton parses it."""
    return text_format.Parse(path.read_text(), ModelConfig())


def study_config(out, model: str) -> ModelConfig:
    return read_config(out / "work" / "triton" / model / "model_repository" / model / "config.pbtxt")


def tensors(config: ModelConfig) -> dict[str, tuple[str, list[int]]]:
    """name -> (data type, dims) of every input and output."""
    return {t.name: (DataType.Name(t.data_type), list(t.dims)) for t in [*config.input, *config.output]}


def run_study(tmp_path, triton_options):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "frameworks": ["triton"], "models": MODELS, "size": "tiny",
        "load": {"users": [3], "repetitions": 1, "duration_s": 2, "warmup_s": 0.5},
        "server": {"options": {"triton": triton_options}}}))
    out = tmp_path / "results"
    done = run_cli("run", str(study), "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "summary.json").read_text())


def assert_served_and_measured(out, summary):
    assert sorted(c["model"] for c in summary["cells"]) == sorted(MODELS)
    for cell in summary["cells"]:
        assert cell["status"] == "ok" and cell["correct"]["ok"] is True, cell
        assert cell["failed"] == 0 and cell["throughput_rps"]["mean"] > 0
        assert cell["client_preprocess_ms"] > 0  # Triton's client preprocesses, measured apart
        metrics = cell["repetitions"][0]["server_metrics"]
        assert metrics["requests_total"] >= cell["repetitions"][0]["ok"]
        for stage in ("server", "queue", "compute_input", "inference", "compute_output"):
            assert metrics[f"{stage}_ms_mean"] >= 0, stage
        assert metrics["inference_ms_mean"] > 0
    assert processes_mentioning(str(out)) == []


def test_every_model_over_http_with_binary_tensors(tmp_path):
    out, summary = run_study(tmp_path, {"protocol": "http"})
    assert_served_and_measured(out, summary)
    config = study_config(out, "resnet50")
    assert (config.name, config.backend, config.platform, config.max_batch_size) == ("resnet50", "python", "", 0)
    # the served shapes, batch dim included: fixed, so perf_analyzer needs no --shape
    assert tensors(config) == {"INPUT__0": ("TYPE_FP32", [1, 3, 224, 224]), "OUTPUT__0": ("TYPE_FP32", [1, 1000])}
    assert [(g.kind, g.count) for g in config.instance_group] == [(ModelInstanceGroup.KIND_CPU, 1)]
    assert not config.HasField("dynamic_batching")
    speech = study_config(out, "wav2vec2")  # full-length audio: its samples differ in length
    assert tensors(speech) == {"INPUT__0": ("TYPE_FP32", [1, -1]), "OUTPUT__0": ("TYPE_FP32", [1, -1, 32])}
    assert tensors(study_config(out, "wav2vec2-truncated"))["INPUT__0"] == ("TYPE_FP32", [1, 50000])
    assert tensors(study_config(out, "bart-large-cnn"))["INPUT__0"] == ("TYPE_INT64", [1, 512])
    assert (out / "work" / "triton" / "resnet50" / "model_repository" / "resnet50" / "1" / "model.py").is_file()


def test_every_model_over_grpc_with_dynamic_batching(tmp_path):
    out, summary = run_study(tmp_path, {"protocol": "grpc", "max_batch_size": 4, "max_queue_delay_us": 2000})
    assert_served_and_measured(out, summary)
    speech = study_config(out, "wav2vec2")
    assert speech.max_batch_size == 4 and speech.dynamic_batching.max_queue_delay_microseconds == 2000
    # Triton adds the batch dim itself
    assert tensors(speech) == {"INPUT__0": ("TYPE_FP32", [-1]), "OUTPUT__0": ("TYPE_FP32", [-1, 32])}
    image = study_config(out, "resnet50")
    assert tensors(image) == {"INPUT__0": ("TYPE_FP32", [3, 224, 224]), "OUTPUT__0": ("TYPE_FP32", [1000])}


def test_real_labels_over_json_requests(tmp_path):
    with launched("triton", "efficientnet-lite0", {"binary": False}, tmp_path) as (adapter, model, launch):
        labels = {}
        for sample in model.samples()[:2]:
            request = adapter.request(model, sample)
            assert request.headers["Content-Type"] == "application/json"
            status, body, _ = send_once(launch.base_url, request, 60)
            labels[sample.name] = adapter.decode(model, status, body)["top5"][0][0]
    assert 281 <= labels["chelsea.jpg"] <= 285 and labels["coffee.jpg"] == 967
    assert processes_mentioning(str(tmp_path)) == []


def test_backends_this_host_lacks_are_unsupported_with_a_reason_but_configs_are_generated(tmp_path):
    model = get_model("resnet50")
    loaded = model.load()
    adapter = get_adapter("triton", load_study("smoke", {"server.options": {"triton": {"backend": "pytorch"}}}))
    assert "pytorch backend is not installed here" in adapter.unsupported_reason(model)
    artifact = adapter.package(model, loaded, tmp_path / "pt")
    config = read_config(artifact.path / "resnet50" / "config.pbtxt")
    assert (config.platform, config.backend) == ("pytorch_libtorch", "")
    assert tensors(config) == {"INPUT__0": ("TYPE_FP32", [1, 3, 224, 224]), "OUTPUT__0": ("TYPE_FP32", [1, 1000])}
    assert (artifact.path / "resnet50" / "1" / "model.pt").is_file()
    bart = get_model("bart-large-cnn")
    with pytest.raises(ServingbenchError, match="can't be traced"):
        adapter.package(bart, bart.load(), tmp_path / "bart")
    onnx_adapter = get_adapter("triton", load_study("smoke", {"server.options": {"triton": {"backend": "onnxruntime"}}}))
    artifact = onnx_adapter.package(model, loaded, tmp_path / "onnx")
    config = read_config(artifact.path / "resnet50" / "config.pbtxt")
    assert (config.backend, config.platform) == ("onnxruntime", "")
    assert tensors(config)["INPUT__0"] == ("TYPE_FP32", [1, 3, 224, 224])
    import onnx
    graph = onnx.load(str(artifact.path / "resnet50" / "1" / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["INPUT__0"] and [o.name for o in graph.output] == ["OUTPUT__0"]


def test_official_container_launch_is_described_and_a_missing_engine_explained(tmp_path, monkeypatch):
    fake = tmp_path / "fake_bin"  # a docker whose engine answers
    fake.mkdir()
    (fake / "docker").write_text("#!/bin/sh\nexit 0\n")
    (fake / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    study = load_study("smoke", {"server.container": {"runtime": "docker"},
                                 "server.options": {"triton": {"backend": "pytorch"}}})
    adapter = get_adapter("triton", study)
    model = get_model("resnet50")
    assert adapter.unsupported_reason(model) is None  # the official image has the pytorch backend
    artifact = adapter.package(model, model.load(), tmp_path)
    from servingbench.adapters.base import Ports
    launch = containerised(adapter.launch_spec(artifact, Ports(8000, 8001, 8002), tmp_path), adapter.container,
                           (artifact.path,))
    argv = " ".join(launch.argv)
    assert argv.startswith("docker run --rm --init --network=host")
    assert f"-v {artifact.path}:{artifact.path}:ro" in argv  # the repository, read-only, at its own path
    assert (f"--entrypoint tritonserver nvcr.io/nvidia/tritonserver:24.10-py3 --model-repository={artifact.path} "
            in argv) and "--http-address=127.0.0.1 --http-port=8000" in argv
    # the image's python backend has no torch or servingbench
    python_backend = get_adapter("triton", load_study("smoke", {"server.container": {"runtime": "docker"}}))
    assert "pytorch, onnxruntime or tensorflow" in python_backend.unsupported_reason(model)
    # a docker client without an engine: a clear error when the study is read, before any work
    (fake / "docker").write_text("#!/bin/sh\nexit 1\n")
    with pytest.raises(ServingbenchError, match="docker is installed but its engine is not running"):
        get_adapter("triton", study)
