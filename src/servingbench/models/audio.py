"""WAV bytes to the model's input signal, and the study's fixed-length cut."""
from __future__ import annotations

import io
from math import gcd

import numpy as np


def decode_wav(data: bytes, sample_rate: int) -> np.ndarray:
    """Any PCM/float WAV to mono float32 in [-1, 1] at `sample_rate` (channels averaged, resampled)."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    try:
        rate, samples = wavfile.read(io.BytesIO(data))
    except ValueError as error:
        raise ValueError(f"not a readable WAV file: {error}") from error
    if samples.dtype == np.uint8:  # 8-bit WAV is unsigned
        audio = (samples.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(samples.dtype, np.integer):
        audio = samples.astype(np.float32) / float(-np.iinfo(samples.dtype).min)
    else:
        audio = samples.astype(np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if rate != sample_rate:
        common = gcd(rate, sample_rate)
        audio = resample_poly(audio, sample_rate // common, rate // common).astype(np.float32)
    return audio


def fit_length(values: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad on the right or cut the last axis to exactly `length` (the study's Listing 2)."""
    missing = length - values.shape[-1]
    if missing > 0:
        return np.pad(values, [(0, 0)] * (values.ndim - 1) + [(0, missing)])
    return values[..., :length]
