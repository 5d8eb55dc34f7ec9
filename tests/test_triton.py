"""Real tritonserver (bundled in nvidia-pytriton, python backend) for every model, over HTTP and gRPC, in both
pipelines: end_to_end (an ensemble: raw sample in, task output out) and network_only (the network's tensors)."""
import json
import os
from contextlib import contextmanager

import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig, ModelInstanceGroup

from conftest import processes_mentioning, run_cli
from servingbench.adapters import get_adapter
from servingbench.adapters.triton import TritonAdapter
from servingbench.config import load_study
from servingbench.errors import ServingbenchError
from servingbench.launch.containers import containerised
from servingbench.load.transport import send_once
from servingbench.models import get_model
from servingbench.models.base import Sample
from servingbench.orchestrate.deployment import deployed

MODELS = ["resnet50", "efficientnet-lite0", "wav2vec2", "wav2vec2-truncated", "bart-large-cnn"]

pytestmark = pytest.mark.skipif(not TritonAdapter(load_study("smoke")).availability().ok,
                                reason="no tritonserver: ./setup.sh installs the bundled one")


def read_config(path) -> ModelConfig:
    """config.pbtxt parsed as Triton parses it."""
    return text_format.Parse(path.read_text(), ModelConfig())


def repository(out, model: str):
    """The model repository a study served `model` from (one pipeline per study here)."""
    [found] = (out / "work").glob(f"triton*/{model}/model_repository")
    return found


def study_config(out, model: str, served: str | None = None) -> ModelConfig:
    """config.pbtxt of `served` (by default the model itself) in the repository the study served `model` from."""
    return read_config(repository(out, model) / (served or model) / "config.pbtxt")


def tensors(config: ModelConfig) -> dict[str, tuple[str, list[int]]]:
    """name -> (data type, dims) of every input and output."""
    return {t.name: (DataType.Name(t.data_type), list(t.dims)) for t in [*config.input, *config.output]}


@contextmanager
def launched(pipeline: str, model_name: str, options: dict, tmp_path, workers: int = 1):
    """conftest's `launched` for one pipeline: yields (adapter, model, loaded, live deployment)."""
    adapter = get_adapter("triton", load_study("smoke", {"server.options": {"triton": options},
                                                         "server.workers": workers}), pipeline)
    model = get_model(model_name)
    loaded = model.load()
    with deployed(adapter, model, loaded, tmp_path, 180) as live:
        yield adapter, model, loaded, live


def run_study(tmp_path, triton_options, pipeline: str = "network_only", models=MODELS):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "frameworks": ["triton"], "models": models, "size": "tiny", "pipeline": [pipeline],
        "load": {"users": [3], "repetitions": 1, "duration_s": 2, "warmup_s": 0.5},
        "server": {"options": {"triton": triton_options}}}))
    out = tmp_path / "results"
    done = run_cli("run", str(study), "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "summary.json").read_text())


def assert_served_and_measured(out, summary, pipeline: str = "network_only", models=MODELS):
    assert sorted(c["model"] for c in summary["cells"]) == sorted(models)
    for cell in summary["cells"]:
        assert cell["status"] == "ok" and cell["correct"]["ok"] is True, cell
        assert cell["failed"] == 0 and cell["throughput_rps"]["mean"] > 0
        if pipeline == "network_only":
            assert cell["client_preprocess_ms"] > 0  # Triton's client preprocesses, measured apart
        else:  # the raw sample goes as it is: nothing done on the client
            assert not cell.get("client_preprocess_ms")
        metrics = cell["repetitions"][0]["server_metrics"]
        assert metrics["requests_total"] >= cell["repetitions"][0]["ok"]
        for stage in ("server", "queue", "compute_input", "inference", "compute_output"):
            assert metrics[f"{stage}_ms_mean"] >= 0, stage
        assert metrics["inference_ms_mean"] > 0
    assert processes_mentioning(str(out)) == []


def test_network_only_every_model_over_http_with_binary_tensors(tmp_path):
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
    assert (repository(out, "resnet50") / "resnet50" / "1" / "model.py").is_file()


@pytest.mark.slow  # the default tier has gRPC with dynamic batching end to end
def test_network_only_every_model_over_grpc_with_dynamic_batching(tmp_path):
    out, summary = run_study(tmp_path, {"protocol": "grpc", "max_batch_size": 4, "max_queue_delay_us": 2000})
    assert_served_and_measured(out, summary)
    speech = study_config(out, "wav2vec2")
    assert speech.max_batch_size == 4 and speech.dynamic_batching.max_queue_delay_microseconds == 2000
    # Triton adds the batch dim itself
    assert tensors(speech) == {"INPUT__0": ("TYPE_FP32", [-1]), "OUTPUT__0": ("TYPE_FP32", [-1, 32])}
    image = study_config(out, "resnet50")
    assert tensors(image) == {"INPUT__0": ("TYPE_FP32", [3, 224, 224]), "OUTPUT__0": ("TYPE_FP32", [1000])}


@pytest.mark.parametrize("pipeline", ["end_to_end", "network_only"])
def test_real_labels_over_json_requests(tmp_path, pipeline):
    with launched(pipeline, "efficientnet-lite0", {"binary": False}, tmp_path) as (adapter, model, _, live):
        labels = {}
        for sample in model.samples()[:2]:
            request = adapter.request(model, sample)
            assert request.headers["Content-Type"] == "application/json"
            status, body, _ = send_once(live.launch.base_url, request, 60)
            labels[sample.name] = adapter.decode(model, status, body)["top5"][0][0]
    assert 281 <= labels["chelsea.jpg"] <= 285 and labels["coffee.jpg"] == 967
    assert processes_mentioning(str(tmp_path)) == []


def test_end_to_end_every_model_answers_raw_samples_like_the_model_over_http(tmp_path):
    """A study in end_to_end: every model's samples go as their raw bytes (binary KServe v2), the ensemble answers
    the task output, checked against the in-process model on every sample."""
    out, summary = run_study(tmp_path, {"protocol": "http"}, "end_to_end")
    assert_served_and_measured(out, summary, "end_to_end")
    for cell in summary["cells"]:
        metrics = cell["repetitions"][0]["server_metrics"]  # the ensemble's: its requests only, not its steps'
        assert metrics["requests_total"] < 2 * cell["repetitions"][0]["ok"] + 10, metrics
    ensemble = study_config(out, "resnet50")
    assert (ensemble.name, ensemble.platform, ensemble.max_batch_size) == ("resnet50", "ensemble", 0)
    assert tensors(ensemble) == {"sample": ("TYPE_UINT8", [1, -1]), "answer": ("TYPE_UINT8", [1, -1])}
    assert [(s.model_name, dict(s.input_map), dict(s.output_map)) for s in ensemble.ensemble_scheduling.step] == [
        ("resnet50_preprocess", {"sample": "sample"}, {"INPUT__0": "network_input"}),
        ("resnet50_network", {"INPUT__0": "network_input"}, {"OUTPUT__0": "network_output"}),
        ("resnet50_postprocess", {"OUTPUT__0": "network_output"}, {"answer": "answer"})]
    network = study_config(out, "resnet50", "resnet50_network")  # the network as network_only serves it
    assert (network.backend, tensors(network)) == ("python", {"INPUT__0": ("TYPE_FP32", [1, 3, 224, 224]),
                                                              "OUTPUT__0": ("TYPE_FP32", [1, 1000])})
    preprocess = study_config(out, "resnet50", "resnet50_preprocess")
    assert preprocess.backend == "python" and preprocess.parameters["step"].string_value == "preprocess"
    assert tensors(preprocess) == {"sample": ("TYPE_UINT8", [1, -1]), "INPUT__0": ("TYPE_FP32", [1, 3, 224, 224])}
    speech = study_config(out, "wav2vec2", "wav2vec2_postprocess")  # full-length audio: its outputs differ in length
    assert tensors(speech) == {"OUTPUT__0": ("TYPE_FP32", [1, -1, 32]), "answer": ("TYPE_UINT8", [1, -1])}
    assert tensors(study_config(out, "wav2vec2", "wav2vec2_preprocess"))["INPUT__0"] == ("TYPE_FP32", [1, -1])
    assert tensors(study_config(out, "bart-large-cnn", "bart-large-cnn_network"))["INPUT__0"] == \
        ("TYPE_INT64", [1, 512])
    for step in ("preprocess", "postprocess"):  # the processing files, no weights
        version = repository(out, "bart-large-cnn") / f"bart-large-cnn_{step}" / "1"
        assert (version / "model.py").is_file() and (version / "servingbench.json").is_file()
        assert not list(version.glob("*.safetensors")) and not list(version.glob("*.pt"))


@pytest.mark.parametrize("model_name", ["resnet50", pytest.param("wav2vec2", marks=pytest.mark.slow)])
def test_end_to_end_over_grpc_with_dynamic_batching_and_two_instances(tmp_path, model_name):
    """The ensemble batches as its steps do (the network's dynamic batching, one max_batch_size for all), with
    the instance count on every step; concurrent raw-sample requests over gRPC answer like the model."""
    from concurrent.futures import ThreadPoolExecutor

    options = {"protocol": "grpc", "max_batch_size": 4, "max_queue_delay_us": 20000}
    with launched("end_to_end", model_name, options, tmp_path, workers=2) as (adapter, model, loaded, live):
        repo = live.artifact.path
        for name in (f"{model_name}_preprocess", f"{model_name}_network", f"{model_name}_postprocess"):
            config = read_config(repo / name / "config.pbtxt")
            assert config.max_batch_size == 4 and [g.count for g in config.instance_group] == [2], name
        ensemble = read_config(repo / model_name / "config.pbtxt")
        assert ensemble.max_batch_size == 4 and tensors(ensemble)["sample"] == ("TYPE_UINT8", [-1])
        assert read_config(repo / f"{model_name}_network" / "config.pbtxt") \
            .dynamic_batching.max_queue_delay_microseconds == 20000
        samples = model.samples() * 3
        requests = [adapter.request(model, sample) for sample in samples]
        assert all(r.protocol == "grpc" and r.client_preprocess_ms == 0 for r in requests)
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda r: send_once(live.launch.base_url, r, 120), requests))
        for sample, (status, body, error) in zip(samples, answers):
            assert error is None, body[:300]
            verdict = model.compare(loaded.predict(sample.data), adapter.decode(model, status, body))
            assert verdict.ok, (sample.name, verdict.reason)
        metrics = adapter.scrape_metrics(live.launch, live.ports)
        # the ensemble's requests, not its steps' too; its compute time is theirs
        assert metrics["requests_total"] == len(samples) and metrics["inference_us_total"] > 0
    assert processes_mentioning(str(tmp_path)) == []


def test_end_to_end_refuses_a_bad_sample_and_goes_on_answering(tmp_path):
    """Not an image: the preprocessing step's error comes back as a 400 with its reason, the stub survives."""
    with launched("end_to_end", "resnet50", {}, tmp_path) as (adapter, model, loaded, live):
        bad = adapter.request(model, Sample("bad.jpg", b"not an image", "image/jpeg"))
        status, body, _ = send_once(live.launch.base_url, bad, 60)
        assert status == 400 and b"preprocess" in body, body[:300]
        sample = model.samples()[0]
        status, body, error = send_once(live.launch.base_url, adapter.request(model, sample), 60)
        assert error is None and model.compare(loaded.predict(sample.data), adapter.decode(model, status, body)).ok


def test_backends_this_host_lacks_are_unsupported_with_a_reason_but_configs_are_generated(tmp_path):
    model = get_model("resnet50")
    loaded = model.load()
    adapter = get_adapter("triton", load_study("smoke", {"server.options": {"triton": {"backend": "pytorch"}}}),
                          "network_only")
    assert "pytorch backend is not installed here" in adapter.unsupported_reason(model)
    artifact = adapter.package(model, loaded, tmp_path / "pt")
    config = read_config(artifact.path / "resnet50" / "config.pbtxt")
    assert (config.platform, config.backend) == ("pytorch_libtorch", "")
    assert tensors(config) == {"INPUT__0": ("TYPE_FP32", [1, 3, 224, 224]), "OUTPUT__0": ("TYPE_FP32", [1, 1000])}
    assert (artifact.path / "resnet50" / "1" / "model.pt").is_file()
    bart = get_model("bart-large-cnn")
    with pytest.raises(ServingbenchError, match="can't be traced"):
        adapter.package(bart, bart.load(), tmp_path / "bart")
    onnx_study = load_study("smoke", {"server.options": {"triton": {"backend": "onnxruntime"}}})
    artifact = get_adapter("triton", onnx_study, "network_only").package(model, loaded, tmp_path / "onnx")
    config = read_config(artifact.path / "resnet50" / "config.pbtxt")
    assert (config.backend, config.platform) == ("onnxruntime", "")
    assert tensors(config)["INPUT__0"] == ("TYPE_FP32", [1, 3, 224, 224])
    import onnx
    graph = onnx.load(str(artifact.path / "resnet50" / "1" / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["INPUT__0"] and [o.name for o in graph.output] == ["OUTPUT__0"]
    # end_to_end: the same network, renamed, between the python-backend pre- and postprocessing
    artifact = get_adapter("triton", onnx_study, "end_to_end").package(model, loaded, tmp_path / "onnx_e2e")
    assert sorted(p.name for p in artifact.path.iterdir()) == [
        "resnet50", "resnet50_network", "resnet50_postprocess", "resnet50_preprocess"]
    network = read_config(artifact.path / "resnet50_network" / "config.pbtxt")
    assert (network.name, network.backend) == ("resnet50_network", "onnxruntime")
    assert (artifact.path / "resnet50_network" / "1" / "model.onnx").is_file()
    ensemble = read_config(artifact.path / "resnet50" / "config.pbtxt")
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [
        "resnet50_preprocess", "resnet50_network", "resnet50_postprocess"]
    assert list((artifact.path / "resnet50" / "1").iterdir()) == []  # an ensemble's version folder is empty


def test_official_container_launch_is_described_and_a_missing_engine_explained(tmp_path, monkeypatch):
    fake = tmp_path / "fake_bin"  # a docker whose engine answers
    fake.mkdir()
    (fake / "docker").write_text("#!/bin/sh\nexit 0\n")
    (fake / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    study = load_study("smoke", {"server.container": {"runtime": "docker"},
                                 "server.options": {"triton": {"backend": "pytorch"}}})
    adapter = get_adapter("triton", study, "network_only")
    model = get_model("resnet50")
    assert adapter.unsupported_reason(model) is None  # the official image has the pytorch backend
    # end_to_end's pre- and postprocessing need servingbench in the python backend
    assert "use the pipeline network_only" in get_adapter("triton", study, "end_to_end").unsupported_reason(model)
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


def test_end_to_end_repository_as_written_serves_the_tuned_ensemble_with_tritonserver_itself(tmp_path):
    """write_config copies the whole ensemble's repository (instance count and batching on every step, weights
    hard-linked) and tritonserver's command line; run as written it answers raw samples like the model."""
    from test_tune_configs import assert_answers_like_the_model, assert_big_files_linked, served_from, write_tuned

    tuned = {"server.workers": 2, "server.options.triton.max_batch_size": 4,
             "server.options.triton.max_queue_delay_us": 5000}
    adapter, model, loaded, live, written, target = write_tuned("triton", tuned, tmp_path)
    assert adapter.pipeline == "end_to_end"
    for step in ("preprocess", "network", "postprocess"):
        config = read_config(target / "repository" / f"resnet50_{step}" / "config.pbtxt")
        assert [group.count for group in config.instance_group] == [2] and config.max_batch_size == 4, step
    assert read_config(target / "repository" / "resnet50" / "config.pbtxt").platform == "ensemble"
    assert_big_files_linked(live.artifact.path, target / "repository")
    assert "tritonserver --model-repository=repository " in written.command
    with served_from(target, written.command, live.launch.ready_url, None, {}):
        assert_answers_like_the_model(adapter, model, loaded, live.launch.base_url)
