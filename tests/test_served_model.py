"""The served-model folder every Python framework loads: the same answers in each runtime."""
import numpy as np
import pytest

from servingbench.adapters.served_model import load_served_model, predict_batch, read_manifest, write_served_model
from servingbench.models import get_model


@pytest.mark.parametrize("runtime", ["eager", "torchscript", "onnxruntime"])
def test_resnet50_answers_like_the_model_in_each_runtime(tmp_path, runtime):
    model = get_model("resnet50")
    loaded = model.load()
    manifest = write_served_model(model, loaded, tmp_path, runtime, threads=1)
    assert manifest.runtime == runtime and read_manifest(tmp_path) == manifest
    served = load_served_model(tmp_path)
    samples = model.samples()[:2]
    answers = predict_batch(served, [s.data for s in samples])
    for sample, answer in zip(samples, answers):
        expected = loaded.predict(sample.data)
        assert model.compare(expected, answer).ok
        np.testing.assert_allclose(answer["logits"], expected["logits"], rtol=1e-3, atol=1e-4)


def test_a_generate_loop_is_served_eager_and_says_why(tmp_path):
    model = get_model("bart-large-cnn")
    loaded = model.load()
    manifest = write_served_model(model, loaded, tmp_path, "onnxruntime", threads=1)
    assert manifest.runtime == "eager" and "onnxruntime asked for" in manifest.note
    sample = model.samples()[0]
    assert predict_batch(load_served_model(tmp_path), [sample.data])[0]["token_ids"] == \
        loaded.predict(sample.data)["token_ids"]
