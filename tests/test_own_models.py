"""Your own models: a transformers directory + task, TorchScript and ONNX files with .npz inputs, a plugin's
entry point and a Python file, served by the reference server, TorchServe and Triton with correct answers."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import processes_mentioning, run_cli
from own_models import PLUGIN, install_plugin, save_network_files, save_text_classifier
from servingbench.adapters import get_adapter
from servingbench.config import load_study
from servingbench.errors import ServingbenchError
from servingbench.models import ModelEntry, get_model
from servingbench.models.samples import user_samples
from test_serve import curl, serving

OWN_MODELS = [
    {"name": "my-classifier", "hf": "./classifier", "task": "text-classification"},
    {"name": "my-torchscript", "network": "./nets/model.pt", "samples": "./nets/inputs.npz",
     "input": {"dtype": "float32", "shape": [1, 8]}},
    {"name": "my-onnx", "network": "./nets/model.onnx", "samples": "./nets/inputs.npz"},
    "byte-histogram",  # the example plugin's entry point
]


@pytest.fixture
def own_models_folder(tmp_path, monkeypatch) -> Path:
    """A user's folder: the models' files, the study file naming them by relative paths, the plugin installed."""
    cwd = tmp_path / "work"
    save_text_classifier(cwd / "classifier")
    save_network_files(cwd / "nets")
    monkeypatch.setenv("PYTHONPATH", str(install_plugin(tmp_path / "site")))
    (cwd / "study.yaml").write_text(yaml.safe_dump({
        "name": "own-models", "frameworks": ["reference", "torchserve", "triton"], "models": OWN_MODELS,
        "load": {"users": [1], "repetitions": 1, "duration_s": 1, "warmup_s": 0.2}}))
    return cwd


def _served_correctly(cwd: Path, *options: str) -> dict:
    """`servingbench run study.yaml` as README shows it; every cell measured and answering like the model."""
    done = run_cli("run", "study.yaml", *options, cwd=cwd, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [out] = list((cwd / "results").iterdir())
    summary = json.loads((out / "summary.json").read_text())
    for cell in summary["cells"]:
        assert cell["status"] == "ok" and cell["correct"]["ok"] is True, (cell["framework"], cell["model"],
                                                                          cell["reason"], cell["correct"])
        assert cell["failed"] == 0 and cell["requests"] > 0, (cell["framework"], cell["model"])
    assert processes_mentioning(str(out)) == []
    return summary


def test_own_models_are_served_by_reference_torchserve_and_triton_with_correct_answers(own_models_folder):
    cwd = own_models_folder
    listed = run_cli("list", "study.yaml", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    for name, origin in [("my-classifier", "study (hf)"), ("my-onnx", "study (network)"),
                         ("byte-histogram", "plugin byte_histogram:ByteHistogram")]:
        assert any(name in line and origin in line for line in listed.stdout.splitlines()), listed.stdout

    summary = _served_correctly(cwd)  # default results folder
    [out] = list((cwd / "results").iterdir())
    assert len({(c["framework"], c["model"]) for c in summary["cells"]}) == 12
    tasks = {m["name"]: m["task"] for m in summary["models"]}
    assert tasks == {"my-classifier": "text-classification", "my-torchscript": "bare-network",
                     "my-onnx": "bare-network", "byte-histogram": "text-classification"}
    # The study as run names every file absolutely, so it reruns from anywhere.
    as_run = yaml.safe_load((out / "study.yaml").read_text())["models"]
    assert as_run[3] == "byte-histogram" and Path(as_run[0]["hf"]) == cwd / "classifier"
    assert Path(as_run[1]["network"]).is_absolute() and Path(as_run[1]["samples"]) == cwd / "nets" / "inputs.npz"


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["fastapi", "rayserve", "bentoml", "litserve", "mlserver", "kserve", "mlflow"])
def test_own_models_on_every_python_framework(own_models_folder, framework):
    available = get_adapter(framework, load_study("smoke")).availability()
    if not available.ok:
        pytest.skip(available.reason)
    summary = _served_correctly(own_models_folder, "--frameworks", framework)
    assert len(summary["cells"]) == len(OWN_MODELS)


def test_a_models_own_samples_and_a_python_file_model(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for name, colour in [("b-red.png", (200, 10, 10)), ("a-blue.jpg", (10, 10, 200))]:
        Image.new("RGB", (64, 48), colour).save(photos / name)
    resnet = get_model(ModelEntry(name="resnet50", samples=photos))
    assert [(s.name, s.content_type) for s in resnet.samples()] == [("a-blue.jpg", "image/jpeg"),
                                                                      ("b-red.png", "image/png")]
    assert resnet.name == "resnet50" and len(resnet.load().predict(resnet.samples()[0].data)["top5"]) == 5

    lines = tmp_path / "reviews.txt"
    lines.write_text("great service\n\n  slow answers  \n")
    assert [(s.name, s.data) for s in user_samples(lines, "text-classification")] == [
        ("reviews-1", b"great service"), ("reviews-3", b"slow answers")]
    stacked = tmp_path / "batch.npy"
    np.save(stacked, np.arange(6, dtype="int64").reshape(3, 2))
    arrays = [np.load(io.BytesIO(s.data)) for s in user_samples(stacked, "bare-network")]
    assert [a.tolist() for a in arrays] == [[[0, 1]], [[2, 3]], [[4, 5]]]

    # `python: file.py:Class`: the model class from a file, named as the study names it.
    entry = ModelEntry(name="my-histogram", python="byte_histogram.py:ByteHistogram").resolved(PLUGIN)
    model = get_model(entry, weights="random", seed=3)
    loaded = model.load()
    saved = get_model(entry, weights=str(loaded.save(tmp_path / "saved"))).load()
    sample = model.samples()[0]
    assert model.name == "my-histogram" and model.task == "text-classification"
    assert model.compare(loaded.predict(sample.data), saved.predict(sample.data)).ok


def test_hf_directory_weights_random_keeps_the_architecture_and_draws_new_weights(tmp_path):
    entry = ModelEntry(name="mine", hf=str(save_text_classifier(tmp_path / "clf")), task="text-classification")
    as_given, redrawn = get_model(entry).load(), get_model(entry, weights="random", seed=1).load()
    sample = get_model(entry).samples()[0]
    given, drawn = as_given.predict(sample.data), redrawn.predict(sample.data)
    assert [label for _, label, _ in given["top5"]] and len(given["logits"]) == len(drawn["logits"]) == 3
    assert given["logits"] != drawn["logits"]


def test_network_inputs_that_do_not_fit_the_declared_input_are_refused(tmp_path):
    torchscript, _, inputs = save_network_files(tmp_path)
    entry = ModelEntry(name="net", network=torchscript, samples=inputs, input={"dtype": "int64", "shape": [1, 8]})
    with pytest.raises(ServingbenchError, match="sample inputs-row0 is float32, the input is int64"):
        get_model(entry).samples()
    wrong_shape = ModelEntry(name="net", network=torchscript, samples=inputs, input={"shape": [1, 9]})
    with pytest.raises(ServingbenchError, match=r"has shape \[1, 8\], the input is \[1, 9\]"):
        get_model(wrong_shape).samples()


@pytest.mark.parametrize("models, message", [
    ([{"name": "x", "hf": "./nowhere"}], "hf and task go together"),
    ([{"name": "x", "network": "model.pt"}], "a network needs samples"),
    ([{"name": "x", "network": "model.bin", "samples": "in.npz"}], "network must be TorchScript or ONNX"),
    ([{"name": "x", "hf": "d", "task": "text-classification", "python": "m:C"}], "give one of hf, network, python"),
    ([{"name": "x", "hf": "d", "task": "translation"}], "field 'models.0.task'"),
    (["resnet50", {"name": "resnet50", "samples": "."}], "model 'resnet50' is named twice"),
    (["no-such-model"], "unknown model 'no-such-model'"),
    ([{"name": "x", "python": "no_such_module:Model"}], "cannot import no_such_module:Model"),
])
def test_bad_model_definitions_are_one_line_errors(tmp_path, models, message):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({"models": models, "load": {"users": [1], "duration_s": 1}}))
    done = run_cli("run", "study.yaml", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert message in line, line
    assert not (tmp_path / "results").exists()


def _vision_transformer(directory: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=32, num_labels=4)).save_pretrained(directory)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("task, build", [
    ("image-classification", _vision_transformer),
    ("automatic-speech-recognition", lambda d: get_model("wav2vec2").load().save(d)),
    ("summarization", lambda d: get_model("bart-large-cnn").load().save(d)),
    ("feature-extraction", save_text_classifier),  # its encoder: the classifier's head is left out
])
def test_every_hf_task_is_served_from_the_folder_a_framework_gets(tmp_path, task, build):
    """What each Python framework and Triton's python backend do with a served-model folder (TorchScript where
    the network traces), answering like the model in-process."""
    from servingbench.adapters.served_model import load_served_model, predict_batch, write_served_model

    model = get_model(ModelEntry(name="mine", hf=str(build(tmp_path / "hf")), task=task))
    loaded = model.load()
    samples = model.samples()[:2]
    manifest = write_served_model(model, loaded, tmp_path / "served", "torchscript", threads=1)
    assert manifest.runtime == ("eager" if task == "summarization" else "torchscript"), manifest.note
    served = predict_batch(load_served_model(tmp_path / "served"), [s.data for s in samples])
    for sample, answer in zip(samples, served):
        assert model.compare(loaded.predict(sample.data), answer).ok, (sample.name, answer)


def test_serve_one_of_a_study_files_own_models(tmp_path):
    """`servingbench serve FRAMEWORK MODEL --study FILE`: the printed curl line gets the network's answer."""
    _, onnx, inputs = save_network_files(tmp_path / "nets")
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"models": [{"name": "my-onnx", "network": str(onnx), "samples": str(inputs)}]}))
    with serving("reference", "my-onnx", tmp_path, "--study", str(study)) as (curl_argv, _):
        answer = json.loads(curl(curl_argv))
    assert answer["shape"] == [1, 4] and len(answer["output"]) == 4
