"""TensorFlow Serving: SavedModel exports checked in-process with TensorFlow, launch arguments, and the
adapter's REST and gRPC requests against a test-only STAND-IN that loads the SavedModel and speaks TF
Serving's APIs (tensorflow_model_server itself can't be installed on the build machine)."""
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import torch
import yaml
from google.protobuf import text_format
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from conftest import processes_mentioning, run_cli
from servingbench.adapters import get_adapter
from servingbench.adapters.base import Artifact, Ports
from servingbench.adapters.tfserving import config_message_classes, task_output
from servingbench.config import load_study
from servingbench.errors import UnsupportedModel
from servingbench.exports.savedmodel import SIGNATURE, export_savedmodel, run_savedmodel, variable_axes
from servingbench.exports.savedmodel_end_to_end import export_end_to_end_savedmodel
from servingbench.launch.containers import Container, containerised
from servingbench.load.transport import send_once
from servingbench.models import ModelEntry, get_model
from servingbench.orchestrate.correctness import check_correctness
from servingbench.orchestrate.deployment import deployed


def parse_text(path, message):
    """A config file read as tensorflow_model_server reads it: protobuf text format into its message."""
    return text_format.Parse(Path(path).read_text(), message)


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


@pytest.mark.parametrize("protocol,pipeline,models", [("http", "end_to_end", ["resnet50", "wav2vec2", "bart-large-cnn"]),
                                                      ("grpc", "network_only", ["wav2vec2-truncated"])])
def test_study_on_the_stand_in_rest_and_grpc(tmp_path, protocol, pipeline, models):
    study = tmp_path / "tf.yaml"
    study.write_text(yaml.safe_dump({
        "name": "tf", "frameworks": ["tfserving"], "models": models, "inprocess_iterations": 0, "pipeline": pipeline,
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
    assert cell["pipeline"] == pipeline
    (work,) = (out / "work").glob(f"tfserving*/{served}")  # a study's other pipelines work in folders of their own
    config = parse_text(work / "tfserving" / "models.config", ModelServerConfig()).model_config_list.config
    assert [(m.name, m.base_path) for m in config] == [(served, str(work / "models" / served))]
    assert (work / "models" / served / "1" / "saved_model.pb").is_file()
    if protocol == "http":
        assert cells["wav2vec2"]["status"] == "unsupported"
        assert "onnx2tf could not convert wav2vec2" in cells["wav2vec2"]["reason"]
        assert cells["bart-large-cnn"]["status"] == "unsupported"
        assert "TF Serving end_to_end: bart-large-cnn's summarization" in cells["bart-large-cnn"]["reason"]
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
    files = {a.split("=", 1)[0]: Path(a.split("=", 1)[1]) for a in argv if a.endswith(".config")}
    (served,) = parse_text(files["--model_config_file"], ModelServerConfig()).model_config_list.config
    assert (served.name, served.base_path, served.model_platform) == (
        "resnet50", str(tmp_path / "models" / "resnet50"), "tensorflow")
    monitoring_class, batching_class = config_message_classes()
    prometheus = parse_text(files["--monitoring_config_file"], monitoring_class()).prometheus_config
    assert prometheus.enable and prometheus.path == "/monitoring/prometheus/metrics"
    batching = parse_text(files["--batching_parameters_file"], batching_class())
    assert (batching.max_batch_size.value, batching.batch_timeout_micros.value, batching.num_batch_threads.value,
            batching.max_enqueued_batches.value) == (16, 1000, 1, 100)
    assert batching.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"  # the name TF Serving parses
    assert launch.ready_url == "http://127.0.0.1:8601/v1/models/resnet50" and launch.ready_body == '"AVAILABLE"'
    assert launch.base_url == "http://127.0.0.1:8601"
    # the official image instead (server.container): the image's server, the models bound read-only at the path the
    # config names, the config files in the (bound) run folder
    fake = tmp_path / "fake_bin"
    fake.mkdir()
    (fake / "podman").write_text("#!/bin/sh\nexit 0\n")
    (fake / "podman").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    boxed = get_adapter("tfserving", load_study("smoke", {"server.container": {"runtime": "podman"},
                                                          "server.options": {"tfserving": {"protocol": "grpc"}}}))
    assert boxed.availability().ok and boxed.container == Container("podman", "tensorflow/serving:2.19.0")
    launch = containerised(boxed.launch_spec(artifact, Ports(8601, 8600, 8602), tmp_path / "boxed"), boxed.container,
                           (artifact.path,))
    argv = list(launch.argv)
    assert argv[:5] == ["podman", "run", "--rm", "--init", "--network=host"]
    assert f"{tmp_path / 'models'}:{tmp_path / 'models'}:ro" in argv
    assert f"{tmp_path / 'boxed'}:{tmp_path / 'boxed'}" in argv
    assert argv[argv.index("--entrypoint") + 1:argv.index("--entrypoint") + 4] == [
        "tensorflow_model_server", "tensorflow/serving:2.19.0", "--port=8600"]
    boxed_config = parse_text(tmp_path / "boxed" / "tfserving" / "models.config", ModelServerConfig())
    assert [m.base_path for m in boxed_config.model_config_list.config] == [str(tmp_path / "models" / "resnet50")]
    assert not (tmp_path / "boxed" / "tfserving" / "batching.config").exists()  # batching is off by default
    assert launch.base_url == "grpc://127.0.0.1:8600"


def test_the_stand_in_reads_the_config_files_as_protos_and_rejects_malformed_ones(tmp_path):
    from google.protobuf.text_format import ParseError

    from servingbench.testing.tfserving_standin import read_batching_parameters, read_metrics_path, read_model_config

    adapter = get_adapter("tfserving", load_study("smoke", {"server.options": {"tfserving": {"batching": True}}}))
    files = adapter.server_files(Artifact("tfserving", "bart", tmp_path / "m"), tmp_path)
    assert read_model_config(files["model_config"]) == {"bart": tmp_path / "m" / "bart"}
    assert read_metrics_path(files["monitoring"]) == "/monitoring/prometheus/metrics"
    assert "max_batch_size { value: 8 }" in read_batching_parameters(files["batching"])
    files["batching"].write_text("max_batch_size: 8\n")  # a bare number where TF Serving wants an Int64Value
    with pytest.raises(ParseError):
        read_batching_parameters(files["batching"])


def test_list_says_tfserving_is_unavailable_here_and_how_to_get_it():
    done = run_cli("list", timeout=120)
    assert done.returncode == 0, done.stderr
    line = " ".join(done.stdout.split())
    assert "tfserving" in line and "no: tensorflow_model_server not found on PATH" in line
    assert "tensorflow-model-server" in line and "tensorflow/serving" in line


def test_triton_tensorflow_backend_gets_the_savedmodel_and_its_config(tmp_path):
    adapter = get_adapter("triton", load_study("smoke", {"server.options": {"triton": {"backend": "tensorflow"}}}),
                          "network_only")  # the network alone, as export_savedmodel writes it
    model = get_model("resnet50")
    assert "tensorflow backend is not installed here" in adapter.unsupported_reason(model)
    artifact = adapter.package(model, model.load(), tmp_path)
    assert (artifact.path / "resnet50" / "1" / "model.savedmodel" / "saved_model.pb").is_file()
    from tritonclient.grpc.model_config_pb2 import ModelConfig

    config = parse_text(artifact.path / "resnet50" / "config.pbtxt", ModelConfig())
    assert config.platform == "tensorflow_savedmodel"
    # the SavedModel signature's tensor names, with the served shapes
    assert [(t.name, list(t.dims)) for t in [*config.input, *config.output]] == [
        ("input", [1, 3, 224, 224]), ("output_0", [1, 1000])]


# -- end_to_end: the raw sample in a string tensor, the model's processing in TensorFlow ops --------------------------

def e2e_adapter(pipeline="end_to_end", binary=None):
    options = {"binary": str(binary)} if binary else {}
    return get_adapter("tfserving", load_study("smoke", {"server.options": {"tfserving": options}}), pipeline)


@pytest.mark.parametrize("name", ["resnet50", "efficientnet-lite0", "wav2vec2-truncated"])
def test_end_to_end_savedmodel_answers_raw_samples_like_the_model(tmp_path, name):
    """In-process TensorFlow: JPEG/WAV bytes through the signature give the in-process model's task output, one
    sample at a time and as one batch (images of different sizes)."""
    import tensorflow as tf

    model = get_model(name)
    loaded = model.load()
    export_end_to_end_savedmodel(model, loaded, tmp_path / "1")
    assert not list((tmp_path / "1").glob("*.tflite"))
    function = tf.saved_model.load(str(tmp_path / "1")).signatures[SIGNATURE]
    ((input_name, spec),) = function.structured_input_signature[1].items()
    assert (input_name, spec.dtype, spec.shape.as_list()) == ("sample", tf.string, [None])
    samples = model.samples()
    batch = {key: value.numpy() for key, value in function(sample=tf.constant([s.data for s in samples])).items()}
    for i, sample in enumerate(samples):
        expected = loaded.predict(sample.data)
        one = {key: value.numpy()[0] for key, value in function(sample=tf.constant([sample.data])).items()}
        for outputs in (one, {key: value[i] for key, value in batch.items()}):
            verdict = model.compare(expected, task_output(outputs))
            assert verdict.ok, (sample.name, verdict.reason)
    if model.task == "speech-recognition":
        assert any(loaded.predict(s.data)["token_ids"] for s in samples)  # not only empty transcripts


@pytest.mark.parametrize("name,pipeline", [("resnet50", "end_to_end"), ("wav2vec2-truncated", "end_to_end"),
                                           ("resnet50", "network_only")])
def test_pipelines_on_the_stand_in_answer_every_sample_like_the_model_over_rest_and_grpc(tmp_path, name, pipeline):
    model = get_model(name)
    loaded = model.load()
    adapter = e2e_adapter(pipeline, stand_in_binary(tmp_path))
    references = {s.name: loaded.predict(s.data) for s in model.samples()}
    with deployed(adapter, model, loaded, tmp_path, 180) as live:
        signature = __import__("tensorflow").saved_model.load(
            str(live.artifact.path / name / "1")).signatures[SIGNATURE].structured_input_signature[1]
        assert list(signature) == (["sample"] if pipeline == "end_to_end" else ["input"])
        for protocol, base_url in (("http", f"http://127.0.0.1:{live.ports.http}"),
                                   ("grpc", f"grpc://127.0.0.1:{live.ports.grpc}")):
            adapter.settings["protocol"] = protocol  # the stand-in answers both at once
            sample = model.samples()[0]
            request = adapter.request(model, sample)
            if pipeline == "end_to_end":
                assert request.client_preprocess_ms == 0.0  # nothing done on the client
                if protocol == "http":
                    assert json.loads(request.body)["instances"][0].keys() == {"b64"}
            else:
                assert request.client_preprocess_ms > 0.0
            correct = check_correctness(adapter, model, model.samples(), references, base_url, 60)
            assert correct.ok is True and correct.samples_checked == len(model.samples()), (protocol, correct.reason)
        if pipeline == "end_to_end":  # a sample the TF ops can't decode: TF Serving's 400, not a crash
            adapter.settings["protocol"] = "http"
            bad = adapter.request(model, sample).model_copy(
                update={"body": json.dumps({"instances": [{"b64": "bm90IGEgc2FtcGxl"}]}).encode()})
            status, _, error = send_once(f"http://127.0.0.1:{live.ports.http}", bad, 60)
            assert status == 400 and error == "HTTP 400"


def test_end_to_end_says_what_tensorflow_ops_cannot_express():
    adapter = e2e_adapter()
    assert adapter.pipelines == ("end_to_end", "network_only") and adapter.pipeline_problem() is None
    assert adapter.pipeline == "end_to_end"  # the default pipeline
    for name in ("resnet50", "efficientnet-lite0", "wav2vec2-truncated", "wav2vec2"):
        assert adapter.unsupported_reason(get_model(name)) is None  # wav2vec2: its network's export decides
    reason = adapter.unsupported_reason(get_model("bart-large-cnn"))
    assert reason.startswith("TF Serving end_to_end: bart-large-cnn's summarization (its BPE tokenisation, "
                             "generate() loop and detokenisation) can't be expressed in TensorFlow ops")
    assert reason.endswith("use pipeline network_only")
    own = get_model(ModelEntry(name="mine", hf="some/model", task="image-classification"))
    assert "mine is your own model (hf)" in adapter.unsupported_reason(own)
    assert e2e_adapter("network_only").unsupported_reason(get_model("bart-large-cnn")) is None  # package() decides


def test_end_to_end_refuses_processing_it_has_no_tensorflow_ops_for(tmp_path):
    from servingbench.models.vision import imagenet_processor

    model = get_model("resnet50")
    loaded = model.load()
    loaded.processor = imagenet_processor()
    loaded.processor.resample = 0  # nearest: not written
    with pytest.raises(UnsupportedModel, match="TF Serving end_to_end: its image processor resamples with .*"
                                               "use pipeline network_only"):
        export_end_to_end_savedmodel(model, loaded, tmp_path / "1")
    speech = get_model("wav2vec2")  # whole recordings: the network's own export fails first, as in network_only
    with pytest.raises(UnsupportedModel, match="onnx2tf could not convert wav2vec2"):
        export_end_to_end_savedmodel(speech, speech.load(), tmp_path / "2")
