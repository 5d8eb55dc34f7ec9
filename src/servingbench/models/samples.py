"""Real request inputs in wire form, built offline and deterministically.

Images ship inside scikit-image, speech is synthesised with espeak-ng (resampled by sox, without
dither so the bytes are reproducible) and prose comes from the licence texts every Debian has.
"""
from __future__ import annotations

import hashlib
import io
import mimetypes
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..atomic import write_atomically
from ..errors import ServingbenchError
from .base import Sample
from .cache import cache_dir

SAMPLE_RATE = 16_000
IMAGES = ("chelsea", "coffee", "astronaut", "rocket")
# Lengths straddle the study's 50,000-sample cut (3.125 s): ~2.7 s, ~4.5 s, ~5.9 s.
SENTENCES = {
    "birch-canoe": "The birch canoe slid on the smooth planks.",
    "stella": "Please call Stella. Ask her to bring these things with her from the store.",
    "serving": "A serving framework turns a trained model into a web service that answers many requests at once.",
}
ESPEAK_VOICE, ESPEAK_WORDS_PER_MINUTE = "en-us", 160
TEXT = "text/plain; charset=utf-8"
NPY = "application/x-npy"  # a network's input tensor: numpy's .npy format, as np.save writes it
PROSE_FILES = ("/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0")
PROSE_CHUNK_CHARS = 2500  # ~500 BPE tokens: the summariser's input budget
CHUNKS_PER_FILE = 2
FALLBACK_PROSE = (
    "Serving frameworks put trained machine learning models behind a network interface. A client "
    "sends a request with an image, a recording or a document; the server decodes it, runs the model "
    "and returns the result. How long that takes, how many requests per second the server sustains, "
    "and whether it keeps answering under load depend on the framework as much as on the model.",
    "Benchmarks of serving frameworks therefore measure latency percentiles, throughput and error "
    "rates at increasing request rates, with the same model and the same inputs for every framework, "
    "and check that every framework returns the same answers as the model run directly in Python.",
)


def image_samples() -> list[Sample]:
    """scikit-image's colour photographs as JPEG bytes (what a client would upload)."""
    import skimage.data
    from PIL import Image

    samples = []
    for name in IMAGES:
        buffer = io.BytesIO()
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(buffer, format="JPEG", quality=90)
        samples.append(Sample(f"{name}.jpg", buffer.getvalue(), "image/jpeg"))
    return samples


def sentence_samples() -> list[Sample]:
    """Short English sentences as UTF-8 text (the speech samples' words): inputs of text classifiers and encoders."""
    return [Sample(f"{name}.txt", text.encode(), TEXT) for name, text in SENTENCES.items()]


def speech_samples() -> list[Sample]:
    """English sentences as 16 kHz mono 16-bit WAV, synthesised once and cached."""
    return [Sample(f"{name}.wav", _speech_wav(text), "audio/wav") for name, text in SENTENCES.items()]


def text_samples() -> list[Sample]:
    """A few ~2,500-character passages of real English prose as UTF-8 text."""
    samples = []
    for path in map(Path, PROSE_FILES):
        if path.is_file():
            chunks = _prose_chunks(path.read_text(encoding="utf-8", errors="replace"))
            samples += [Sample(f"{path.name.lower()}-{i + 1}", chunk.encode(), TEXT)
                        for i, chunk in enumerate(chunks[:CHUNKS_PER_FILE])]
    if not samples:
        samples = [Sample(f"builtin-{i + 1}", text.encode(), TEXT)
                   for i, text in enumerate(FALLBACK_PROSE)]
    return samples


def _prose_chunks(text: str) -> list[str]:
    """Consecutive prose paragraphs (hard-wrapped lines joined) grouped into ~PROSE_CHUNK_CHARS pieces."""
    paragraphs = [" ".join(block.split()) for block in re.split(r"\n\s*\n", text)]
    prose = [p for p in paragraphs if len(p) >= 200]  # skip titles, headings and short list items
    chunks, current = [], ""
    for paragraph in prose:
        current = f"{current} {paragraph}".strip()
        if len(current) >= PROSE_CHUNK_CHARS:
            chunks.append(current)
            current = ""
    return chunks


def _speech_wav(text: str) -> bytes:
    key = hashlib.sha256(f"{ESPEAK_VOICE}|{ESPEAK_WORDS_PER_MINUTE}|{SAMPLE_RATE}|{text}".encode()).hexdigest()[:16]
    path = cache_dir() / "samples" / f"speech-{key}.wav"
    if not path.is_file():
        write_atomically(path, _synthesise(text))
    return path.read_bytes()


def _synthesise(text: str) -> bytes:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise ServingbenchError(f"speech samples need {' and '.join(missing)}: apt-get install espeak-ng sox")
    with tempfile.TemporaryDirectory(prefix="servingbench-speech-") as scratch:
        raw, converted = Path(scratch, "espeak.wav"), Path(scratch, "16k.wav")  # files: WAV headers need seeking
        subprocess.run(["espeak-ng", "-v", ESPEAK_VOICE, "-s", str(ESPEAK_WORDS_PER_MINUTE), "-w", str(raw), text],
                       capture_output=True, check=True)
        # -D: no dither; sox dithers with fresh random noise by default, which would change the bytes every run.
        subprocess.run(["sox", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                        str(converted)], capture_output=True, check=True)
        return converted.read_bytes()


def user_samples(path: Path, task: str) -> list[Sample]:
    """Your own inputs in wire form: a folder (every file one sample, by name), a .txt file (every non-empty
    line one sample), .npz (every array one network input) or .npy (the first axis indexes the inputs),
    or any other single file (one sample)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        samples = [sample for file in files for sample in _file_samples(file, whole_text=True)]
    elif path.is_file():
        samples = _file_samples(path, whole_text=False)
    else:
        raise ServingbenchError(f"samples not found: {path}")
    if not samples:
        raise ServingbenchError(f"no samples in {path} (for a {task} model)")
    return samples


def _file_samples(path: Path, whole_text: bool) -> list[Sample]:
    """A folder's .txt file is one sample; a .txt file given alone holds one per line."""
    if path.suffix == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as arrays:
            return [Sample(f"{path.stem}-{key}", npy_bytes(arrays[key]), NPY) for key in arrays.files]
    if path.suffix == ".npy":
        import numpy as np

        array = np.load(path, allow_pickle=False)
        return [Sample(f"{path.stem}-{i}", npy_bytes(array[i:i + 1]), NPY) for i in range(len(array))]
    if path.suffix == ".txt" and not whole_text:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        return [Sample(f"{path.stem}-{n}", line.encode(), TEXT) for n, line in enumerate(lines, 1) if line]
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type.startswith("text/"):
        content_type = f"{content_type}; charset=utf-8"
    return [Sample(path.name, path.read_bytes(), content_type)]


def npy_bytes(array) -> bytes:
    """An array in numpy's .npy format (dtype and shape included), as a request body."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
