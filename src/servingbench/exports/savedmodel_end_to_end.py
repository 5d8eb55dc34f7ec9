"""TF Serving's end_to_end pipeline: a SavedModel whose signature takes the raw sample bytes and answers the task.

The network is the one exports/savedmodel.py converts (torch → ONNX → onnx2tf); around it, in TensorFlow ops, the
model's own preprocessing and postprocessing, so that TF Serving receives what every other framework receives (JPEG
or WAV bytes: a tf.string, REST `{"instances": [{"b64": ...}]}` or a gRPC string tensor) and answers the task output:

- image classification (a ConvNeXT-style image processor: shortest edge to int(size / crop_pct), centre crop, 1/255,
  mean/std): the image decoded as PIL decodes it (JPEG with libjpeg's accurate integer DCT), resized exactly as
  Pillow resizes 8-bit images (its filter weights, 22-bit fixed-point coefficients, horizontal then vertical pass,
  each rounded to uint8; bilinear or bicubic), cropped, rescaled and normalised in the processor's float order;
  then the network, softmax and top 5 with the labels (`logits`, `top_ids`, `top_labels`, `top_probabilities`).
- speech recognition with a fixed input length (wav2vec2-truncated): 16-bit PCM WAV at 16 kHz decoded, channels
  averaged, zero-mean unit-variance normalised, cut or zero-padded to the length; the network; CTC greedy decoding
  (argmax, repeats merged, blank dropped, the vocabulary's characters joined, the word delimiter a space, stripped):
  `text` and `token_ids` (padded with -1 to the batch's longest).

Anything else raises UnsupportedModel naming why (the cell becomes 'unsupported').
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from servingbench.errors import UnsupportedModel
from servingbench.exports.savedmodel import SIGNATURE, export_savedmodel, tensorflow_missing, variable_axes
from servingbench.models.base import LoadedModel, ModelSpec

# The end_to_end signature's input (one raw sample per batch item) and its outputs per task.
SAMPLE_INPUT = "sample"
CLASSIFICATION_OUTPUTS = ("logits", "top_ids", "top_labels", "top_probabilities")
SPEECH_OUTPUTS = ("text", "token_ids")
TOKEN_PAD = -1  # token_ids of a shorter transcript in a batch
PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point resampling coefficients (libImaging/Resample.c)
SPEECH_RATE = 16_000


def why_not_end_to_end(model: ModelSpec, loaded: LoadedModel) -> str | None:
    """None when the model's processing can be written in TensorFlow ops here, else why not."""
    from servingbench.models.speech import SpeechRecognizer
    from servingbench.models.vision import ImageClassifier

    if isinstance(loaded, ImageClassifier):
        return _image_processor_problem(loaded.processor)
    if isinstance(loaded, SpeechRecognizer):
        return None  # whole recordings: refused in speech_function, after the network's own export (which fails)
    return f"{model.name}'s processing ({type(loaded).__name__}) has no TensorFlow-ops version here"


def _image_processor_problem(processor) -> str | None:
    name = type(processor).__name__
    if not name.startswith("ConvNextImageProcessor"):
        return f"its image processor {name} has no TensorFlow-ops version here (only ConvNeXT-style ones)"
    if int(processor.resample) not in (2, 3):  # PILImageResampling.BILINEAR, BICUBIC
        return f"its image processor resamples with {processor.resample!r} (only bilinear and bicubic are written)"
    shortest = (processor.size or {}).get("shortest_edge")
    if not shortest or shortest >= 384:  # ConvNeXT's other branch (a square resize) is not written
        return f"its image processor's size {processor.size} is not a shortest edge under 384"
    if not (processor.do_resize and processor.do_rescale and processor.do_normalize) or getattr(
            processor, "do_center_crop", False):
        return "its image processor skips or adds steps the TensorFlow version does not"
    return None


def export_end_to_end_savedmodel(model: ModelSpec, loaded: LoadedModel, directory: Path) -> None:
    """The network exported as exports/savedmodel.py does, wrapped in the model's processing; written to
    `directory` (replaced) with the `serving_default` signature taking `sample` (tf.string, [batch])."""
    reason = tensorflow_missing()
    if reason:
        raise UnsupportedModel(reason)
    problem = why_not_end_to_end(model, loaded)
    if problem:
        raise UnsupportedModel(f"TF Serving end_to_end: {problem}; use pipeline network_only")
    import tensorflow as tf

    from servingbench.models.speech import SpeechRecognizer

    with tempfile.TemporaryDirectory(prefix="sb-e2e-") as tmp:
        network_dir = Path(tmp) / "network"
        export_savedmodel(model, loaded, network_dir, variable_axes(model, loaded))
        module = tf.Module()
        module.network = tf.saved_model.load(str(network_dir))
        network = module.network.signatures[SIGNATURE]
        if isinstance(loaded, SpeechRecognizer):
            serve = speech_function(loaded, network)
        else:
            serve = image_function(loaded, network)
        shutil.rmtree(directory, ignore_errors=True)
        tf.saved_model.save(module, str(directory), signatures={SIGNATURE: serve.get_concrete_function()})


def _network_output(network, tensor):
    (output,) = network(input=tensor).values()
    return output


# -- images ---------------------------------------------------------------------------------------------------------

def _bilinear(x):
    import tensorflow as tf

    x = tf.abs(x)
    return tf.where(x < 1.0, 1.0 - x, tf.zeros_like(x))


def _bicubic(x):
    import tensorflow as tf

    a = -0.5  # Pillow's bicubic
    x = tf.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


FILTERS = {2: (_bilinear, 1.0), 3: (_bicubic, 2.0)}  # PILImageResampling -> (filter, support)


def pillow_coefficients(in_size, out_size, resample: int):
    """Pillow's 8-bit resampling weights (precompute_coeffs + normalize_coeffs_8bpc) as an [out, in] float64 matrix
    of integers (in units of 2**-PRECISION_BITS)."""
    import tensorflow as tf

    kernel, filter_support = FILTERS[resample]
    in_f, out_f = tf.cast(in_size, tf.float64), tf.cast(out_size, tf.float64)
    scale = in_f / out_f
    filterscale = tf.maximum(scale, 1.0)
    support = filter_support * filterscale
    center = (tf.range(out_f, dtype=tf.float64) + 0.5) * scale  # [out]
    xmin = tf.maximum(tf.floor(center - support + 0.5), 0.0)  # C's (int) of a value >= -0.5 truncates like floor
    xmax = tf.minimum(tf.floor(center + support + 0.5), in_f)
    x = tf.range(in_f, dtype=tf.float64)[None, :]
    inside = (x >= xmin[:, None]) & (x < xmax[:, None])
    weights = tf.where(inside, kernel((x - center[:, None] + 0.5) * (1.0 / filterscale)), tf.zeros_like(x + center[:, None]))
    total = tf.reduce_sum(weights, axis=1, keepdims=True)
    weights = tf.math.divide_no_nan(weights, total)
    scaled = weights * float(1 << PRECISION_BITS)
    return tf.where(scaled < 0, tf.math.ceil(scaled - 0.5), tf.floor(scaled + 0.5))  # C's (int) truncates to zero


def _pillow_pass(image, coefficients):
    """One Pillow resampling pass along axis 0 of an [in, other, channels] float64 image of uint8 values: the
    fixed-point sums (exact in float64), rounded and clipped to uint8 values as Pillow's clip8 does."""
    import tensorflow as tf

    summed = tf.einsum("oi,ijc->ojc", coefficients, image) + float(1 << (PRECISION_BITS - 1))
    return tf.clip_by_value(tf.floor(summed / float(1 << PRECISION_BITS)), 0.0, 255.0)


def pillow_resize(image, height, width, resample: int):
    """uint8 [h, w, 3] to float64 [height, width, 3] of uint8 values, as PIL.Image.resize((width, height))."""
    import tensorflow as tf

    pixels = tf.cast(image, tf.float64)
    in_h, in_w = tf.shape(image)[0], tf.shape(image)[1]

    def horizontal(p):
        rows = tf.transpose(p, [1, 0, 2])  # [w, h, c]
        return tf.transpose(_pillow_pass(rows, pillow_coefficients(in_w, width, resample)), [1, 0, 2])

    def vertical(p):
        return _pillow_pass(p, pillow_coefficients(in_h, height, resample))

    pixels = tf.cond(tf.equal(in_w, width), lambda: pixels, lambda: horizontal(pixels))
    return tf.cond(tf.equal(in_h, height), lambda: pixels, lambda: vertical(pixels))


def decode_rgb(data):
    """Encoded image bytes to uint8 [h, w, 3] as PIL's open + convert('RGB') (JPEG: the accurate integer DCT)."""
    import tensorflow as tf

    return tf.cond(tf.io.is_jpeg(data),
                   lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
                   lambda: tf.ensure_shape(tf.io.decode_image(data, channels=3, expand_animations=False),
                                           [None, None, 3]))


def image_function(loaded: LoadedModel, network):
    import tensorflow as tf

    processor = loaded.processor
    crop = int(processor.size["shortest_edge"])
    short_target = int(crop / processor.crop_pct)
    resample = int(processor.resample)
    rescale = float(processor.rescale_factor)
    mean = tf.constant(processor.image_mean, tf.float32)
    std = tf.constant(processor.image_std, tf.float32)
    labels = tf.constant(list(loaded.labels))

    def one(data):
        image = decode_rgb(data)
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        short, long = tf.minimum(h, w), tf.maximum(h, w)
        # get_resize_output_image_size: int(size * long / short) in Python floats
        new_long = tf.cast(tf.floor(float(short_target) * tf.cast(long, tf.float64) / tf.cast(short, tf.float64)),
                           tf.int32)
        new_h, new_w = tf.cond(w <= h, lambda: (new_long, short_target), lambda: (short_target, new_long))
        resized = pillow_resize(image, new_h, new_w, resample)
        top, left = (new_h - crop) // 2, (new_w - crop) // 2
        cropped = resized[top:top + crop, left:left + crop, :]
        values = tf.cast(cropped * rescale, tf.float32)  # np_rescale: float64 product, then float32
        values = (values - mean) / std
        return tf.ensure_shape(tf.transpose(values, [2, 0, 1]), [3, crop, crop])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SAMPLE_INPUT)])
    def serve(sample):
        pixels = tf.map_fn(one, sample, fn_output_signature=tf.TensorSpec([3, crop, crop], tf.float32))
        logits = tf.cast(_network_output(network, pixels), tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        top = tf.math.top_k(probabilities, k=min(5, int(labels.shape[0])))
        return {"logits": logits, "top_ids": top.indices, "top_labels": tf.gather(labels, top.indices),
                "top_probabilities": top.values}

    return serve


# -- speech ---------------------------------------------------------------------------------------------------------

def speech_function(loaded: LoadedModel, network):
    import tensorflow as tf

    length = loaded.input_samples
    if length is None:
        raise UnsupportedModel("TF Serving end_to_end: whole recordings (no fixed input length) are not written in "
                               "TensorFlow ops; use pipeline network_only or the model's truncated variant")
    features = loaded.processor.feature_extractor
    tokenizer = loaded.processor.tokenizer
    vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    pieces = tf.constant([tokenizer.replace_word_delimiter_char if token == tokenizer.word_delimiter_token
                          else token for token in vocabulary])
    blank = int(tokenizer.pad_token_id)
    normalize = bool(features.do_normalize)
    lower = bool(getattr(tokenizer, "do_lower_case", False))
    if tokenizer.clean_up_tokenization_spaces:
        raise UnsupportedModel("TF Serving end_to_end: the tokenizer's clean_up_tokenization is not written in "
                               "TensorFlow ops; use pipeline network_only")

    def one(data):
        audio, rate = tf.audio.decode_wav(data)  # 16-bit PCM as float32 / 32768, [samples, channels]
        tf.debugging.assert_equal(rate, SPEECH_RATE, message="only 16 kHz WAV (no resampling in TensorFlow ops)")
        audio = tf.cond(tf.shape(audio)[1] > 1, lambda: tf.reduce_mean(audio, axis=1), lambda: audio[:, 0])
        if normalize:
            wide = tf.cast(audio, tf.float64)
            mean = tf.cast(tf.reduce_mean(wide), tf.float32)
            var = tf.cast(tf.reduce_mean(tf.square(wide - tf.cast(mean, tf.float64))), tf.float32)
            audio = (audio - mean) / tf.sqrt(var + 1e-7)
        audio = audio[:length]
        audio = tf.pad(audio, [[0, length - tf.shape(audio)[0]]])
        return tf.ensure_shape(audio, [length])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SAMPLE_INPUT)])
    def serve(sample):
        values = tf.map_fn(one, sample, fn_output_signature=tf.TensorSpec([length], tf.float32))
        logits = _network_output(network, values)
        ids = tf.argmax(logits, axis=-1, output_type=tf.int32)  # [batch, frames]
        previous = tf.concat([tf.fill([tf.shape(ids)[0], 1], -1), ids[:, :-1]], axis=1)
        tokens = tf.ragged.boolean_mask(ids, (ids != previous) & (ids != blank))
        text = tf.strings.strip(tf.strings.reduce_join(tf.gather(pieces, tokens), axis=-1))
        if lower:
            text = tf.strings.lower(text, encoding="utf-8")
        return {"text": text, "token_ids": tokens.to_tensor(default_value=TOKEN_PAD)}

    return serve
