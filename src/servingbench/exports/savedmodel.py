"""TensorFlow SavedModels converted from the shared torch network: torch → ONNX → onnx2tf → SavedModel.

Why convert instead of taking keras.applications' ResNet50 (the study's source): one set of weights
for every framework, so TensorFlow's answers can be checked against the same in-process model; and
the models without a Keras implementation (EfficientNet-Lite0, Wav2Vec2) get a SavedModel the same
way. The ONNX graph is simplified (onnxsim) and its Constant nodes made initializers first, which
onnx2tf needs for normalisation layers. Image inputs stay NCHW (the torch layout the client
preprocessing produces), so every framework receives the same tensor. The signature
`serving_default` takes `input` and returns `output_0`; the batch axis is variable, and every other
axis is fixed to the example's shape unless the samples differ in length along it.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from servingbench.errors import UnsupportedModel
from servingbench.exports.precision import exportable
from servingbench.models.base import LoadedModel, ModelSpec

SIGNATURE = "serving_default"
# The signature's names: the ONNX input's, and the key TensorFlow gives a single unnamed output.
INPUT, OUTPUT = "input", "output_0"
REQUIRED = ("tensorflow", "onnx2tf", "onnxsim", "tf_keras", "onnx_graphsurgeon")


@dataclass(frozen=True)
class Signature:
    """What `serving_default` takes and returns: None is a variable dimension."""

    input_shape: tuple[int | None, ...]
    input_dtype: str
    output_shape: tuple[int | None, ...]
    output_dtype: str


def tensorflow_missing() -> str | None:
    """Why SavedModels can't be written here, or None."""
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        return (f"{', '.join(missing)} not installed: pip install 'servingbench[tensorflow]' "
                "(./setup.sh does), then pip install --no-deps tf-keras tensorflow-serving-api")
    return None


def variable_axes(model: ModelSpec, loaded: LoadedModel) -> tuple[int, ...]:
    """Axes (besides the batch) whose size differs between the model's samples, e.g. audio length."""
    shapes = [tuple(loaded.preprocess(s.data).shape) for s in model.samples()]
    return tuple(axis for axis in range(1, len(shapes[0])) if len({shape[axis] for shape in shapes}) > 1)


def _onnx_for_onnx2tf(module: torch.nn.Module, example: torch.Tensor, path: Path, variable_axes: tuple[int, ...]) -> None:
    import onnx
    import onnxsim

    axes = {axis: f"d{axis}" for axis in (0, *variable_axes)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=[INPUT], output_names=["output"],
                          dynamic_axes={INPUT: axes, "output": {0: "d0"}})
    simplified, ok = onnxsim.simplify(onnx.load(str(path)))
    graph = simplified.graph
    for node in [n for n in graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"]:
        tensor = onnx.TensorProto()
        tensor.CopyFrom(node.attribute[0].t)
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
        graph.node.remove(node)
    onnx.save(simplified, str(path))


def export_savedmodel(model: ModelSpec, loaded: LoadedModel, directory: Path,
                      variable_axes: tuple[int, ...] = ()) -> Signature:
    """Writes the SavedModel into `directory` (replaced); raises UnsupportedModel with the converter's error."""
    reason = tensorflow_missing()
    if reason:
        raise UnsupportedModel(reason)
    module = exportable(loaded)  # on the model's device, in its dtype
    if module is None:
        raise UnsupportedModel(f"{model.name} converts to neither ONNX nor a SavedModel signature: "
                               f"{loaded.untraceable_because}")
    example = loaded.preprocess(model.samples()[0].data)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import onnx2tf

    shutil.rmtree(directory, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="sb-savedmodel-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        _onnx_for_onnx2tf(module, example, onnx_path, variable_axes)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # onnx2tf prints a banner and per-op notes
                onnx2tf.convert(input_onnx_file_path=str(onnx_path), output_folder_path=str(directory),
                                keep_ncw_or_nchw_or_ncdhw_input_names=[INPUT] if example.dim() >= 3 else None,
                                output_signaturedefs=True, non_verbose=True,
                                # Strict mode's "accuracy correction" (checking transposes against
                                # onnxruntime on dummy data) mis-converts real-size Wav2Vec2 attention
                                # (12 heads x 64: errors of 0.67 on a 0.4 scale); without it, 3e-6.
                                disable_strict_mode=True)
        except Exception as exc:  # the converter's own failure is the reason the cell can't run
            raise UnsupportedModel(f"onnx2tf could not convert {model.name}: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    if not (directory / "saved_model.pb").is_file():
        raise UnsupportedModel(f"onnx2tf wrote no SavedModel for {model.name}")
    for extra in directory.glob("*.tflite"):  # onnx2tf also writes TFLite models; TF Serving needs none
        extra.unlink()
    return read_signature(directory)


def read_signature(directory: Path) -> Signature:
    import tensorflow as tf

    function = tf.saved_model.load(str(directory)).signatures[SIGNATURE]
    spec = function.structured_input_signature[1][INPUT]
    out = function.structured_outputs[OUTPUT]
    return Signature(tuple(spec.shape.as_list()), spec.dtype.name, tuple(out.shape.as_list()), out.dtype.name)


def run_savedmodel(directory: Path, tensor: np.ndarray) -> np.ndarray:
    """The SavedModel run in-process by TensorFlow (the export's checks against the torch model)."""
    import tensorflow as tf

    function = tf.saved_model.load(str(directory)).signatures[SIGNATURE]
    return function(**{INPUT: tf.constant(tensor)})[OUTPUT].numpy()
