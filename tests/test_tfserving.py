"""TensorFlow Serving: SavedModel exports checked in-process with TensorFlow, launch arguments, and the
adapter's REST and gRPC requests against a test-only STAND-IN that loads the SavedModel and speaks TF
Serving's APIs (tensorflow_model_server itself can't be installed on the build machine)."""
import json
import os
import stat
import sys

import pytest
import torch
import yaml

from conftest import processes_mentioning, run_cli
from servingbench.adapters import get_adapter
from servingbench.adapters.base import Artifact, Ports
from servingbench.config import load_study
from servingbench.errors import UnsupportedModel
from servingbench.exports.savedmodel import export_savedmodel, run_savedmodel, variable_axes
from servingbench.models import get_model


def stand_in_binary(tmp_path):
    """An executable named like TF Serving's that runs the stand-in with the flags it is given."""
    path = tmp_path / "bin" / "tensorflow_model_server"
    path.parent.mkdir()
    path.write_text(f'#!/bin/sh\nexec {sys.executable} -m servingbench.testing.tfserving_standin "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.mark.parametrize("name,input_shape,output_rank", [
    ("resnet50", (None, 3, 224, 224), 2),
    ("efficientnet-lite0", (None, 3, 224, 224), 2),
    ("wav2vec2-truncated", (None, 50000), 3),  # the study's fixed (-1, 50000) signature
])
def test_savedmodel_signature_and_answers_match_the_in_process_model(tmp_path, name, input_shape, output_rank):
    model = get_model(name)
    loaded = model.load()
    signature = export_savedmodel(model, loaded, tmp_path / "1", variable_axes(model, loaded))
    assert (tmp_path / "1" / "saved_model.pb").is_file() and not list((tmp_path / "1").glob("*.tflite"))
    assert signature.input_shape == input_shape and signature.input_dtype == "float32"
    assert len(signature.output_shape) == output_rank and signature.output_shape[0] is None
    for sample in model.samples():
        tensor = loaded.preprocess(sample.data).numpy()
        served = loaded.postprocess(torch.from_numpy(run_savedmodel(tmp_path / "1", tensor)))
        verdict = model.compare(loaded.predict(sample.data), served)
        assert verdict.ok, (sample.name, verdict.reason)


def test_models_without_a_savedmodel_say_why(tmp_path):
    speech = get_model("wav2vec2")  # full length: its samples differ in length
    loaded = speech.load()
    assert variable_axes(speech, loaded) == (1,)
    with pytest.raises(UnsupportedModel, match="onnx2tf could not convert wav2vec2: "):
        export_savedmodel(speech, loaded, tmp_path / "w", variable_axes(speech, loaded))
    bart = get_model("bart-large-cnn")
    with pytest.raises(UnsupportedModel, match=r"generate\(\) loop"):
        export_savedmodel(bart, bart.load(), tmp_path / "b")


@pytest.mark.parametrize("protocol,models", [("http", ["resnet50", "wav2vec2", "bart-large-cnn"]),
                                             ("grpc", ["wav2vec2-truncated"])])
def test_study_on_the_stand_in_rest_and_grpc(tmp_path, protocol, models):
    study = tmp_path / "tf.yaml"
    study.write_text(yaml.safe_dump({
        "name": "tf", "frameworks": ["tfserving"], "models": models, "inprocess_iterations": 0,
        "load": {"users": [2], "repetitions": 1, "duration_s": 1.5, "warmup_s": 0.5},
        "server": {"options": {"tfserving": {"binary": str(stand_in_binary(tmp_path)), "protocol": protocol}}}}))
    out = tmp_path / "results"
    done = run_cli("run", str(study), "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = {c["model"]: c for c in json.loads((out / "summary.json").read_text())["cells"]}
    served = models[0]
    cell = cells[served]
    assert cell["status"] == "ok" and cell["correct"]["ok"] is True, cell
    trial = cell["repetitions"][0]
    assert trial["failed"] == 0 and trial["requests"] > 0
    # the stand-in counts under TF Serving's Prometheus names, read through the adapter's mapping
    assert trial["server_metrics"]["requests_total"] >= trial["requests"]
    work = out / "work" / "tfserving" / served
    config = (work / "tfserving" / "models.config").read_text()
    assert f'name: "{served}"' in config and f'base_path: "{work / "models" / served}"' in config
    assert (work / "models" / served / "1" / "saved_model.pb").is_file()
    if protocol == "http":
        assert cells["wav2vec2"]["status"] == "unsupported"
        assert "onnx2tf could not convert wav2vec2" in cells["wav2vec2"]["reason"]
        assert cells["bart-large-cnn"]["status"] == "unsupported"
        assert "generate() loop" in cells["bart-large-cnn"]["reason"]
        assert "tfserving / bart-large-cnn: unsupported" in (out / "tables" / "README.md").read_text()
    assert processes_mentioning(str(out)) == []


def test_launch_arguments_config_files_and_container(tmp_path, monkeypatch):
    options = {"binary": "/opt/tfs/tensorflow_model_server", "batching": True, "max_batch_size": 16}
    adapter = get_adapter("tfserving", load_study("smoke", {"server.options": {"tfserving": options},
                                                            "server.threads": 2}))
    artifact = Artifact("tfserving", "resnet50", tmp_path / "models")
    launch = adapter.launch_spec(artifact, Ports(8601, 8600, 8602), tmp_path / "run")
    argv = list(launch.argv)
    assert argv[0] == "/opt/tfs/tensorflow_model_server"
    assert {"--port=8600", "--rest_api_port=8601", "--enable_batching", "--tensorflow_intra_op_parallelism=2"} <= set(argv)
    files = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.endswith(".config")}
    assert 'base_path: "{}"'.format(tmp_path / "models" / "resnet50") in open(files["--model_config_file"]).read()
    batching = open(files["--batching_parameters_file"]).read()
    assert "max_batch_size { value: 16 }" in batching and "batch_timeout_micros { value: 1000 }" in batching
    assert 'path: "/monitoring/prometheus/metrics"' in open(files["--monitoring_config_file"]).read()
    assert launch.ready_url == "http://127.0.0.1:8601/v1/models/resnet50" and launch.ready_body == '"AVAILABLE"'
    assert launch.base_url == "http://127.0.0.1:8601"
    # a container image instead: the models are mounted at /models and the config says so
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "podman").write_text("#!/bin/sh\nexit 0\n")
    (fake / "podman").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    boxed = get_adapter("tfserving", load_study("smoke", {"server.options": {"tfserving": {
        "container_image": "tensorflow/serving:2.19.0", "container_runtime": "podman", "protocol": "grpc"}}}))
    assert boxed.availability().ok
    launch = boxed.launch_spec(artifact, Ports(8601, 8600, 8602), tmp_path / "boxed")
    argv = list(launch.argv)
    assert argv[:5] == ["podman", "run", "--rm", "--init", "--network=host"]
    assert f"{tmp_path / 'models'}:/models:ro" in argv
    assert argv[argv.index("--entrypoint") + 1:argv.index("--entrypoint") + 3] == ["tensorflow_model_server",
                                                                                "tensorflow/serving:2.19.0"]
    assert 'base_path: "/models/resnet50"' in (tmp_path / "boxed" / "tfserving" / "models.config").read_text()
    assert launch.base_url == "grpc://127.0.0.1:8600"


def test_list_says_tfserving_is_unavailable_here_and_how_to_get_it():
    done = run_cli("list", timeout=120)
    assert done.returncode == 0, done.stderr
    line = " ".join(done.stdout.split())
    assert "tfserving" in line and "no: tensorflow_model_server not found on PATH" in line
    assert "tensorflow-model-server" in line and "tensorflow/serving" in line


def test_triton_tensorflow_backend_gets_the_savedmodel_and_its_config(tmp_path):
    adapter = get_adapter("triton", load_study("smoke", {"server.options": {"triton": {"backend": "tensorflow"}}}))
    model = get_model("resnet50")
    assert "tensorflow backend is not installed here" in adapter.unsupported_reason(model)
    artifact = adapter.package(model, model.load(), tmp_path)
    assert (artifact.path / "resnet50" / "1" / "model.savedmodel" / "saved_model.pb").is_file()
    config = (artifact.path / "resnet50" / "config.pbtxt").read_text()
    assert 'platform: "tensorflow_savedmodel"' in config
    assert 'name: "input"' in config and 'name: "output_0"' in config
