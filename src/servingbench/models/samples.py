"""Real request inputs in wire form, built offline and deterministically.

Images ship inside scikit-image, speech is synthesised with espeak-ng (resampled by sox, without
dither so the bytes are reproducible) and prose comes from the licence texts every Debian has.
"""
from __future__ import annotations

import hashlib
import io
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


def speech_samples() -> list[Sample]:
    """English sentences as 16 kHz mono 16-bit WAV, synthesised once and cached."""
    return [Sample(f"{name}.wav", _speech_wav(text), "audio/wav") for name, text in SENTENCES.items()]


def text_samples() -> list[Sample]:
    """A few ~2,500-character passages of real English prose as UTF-8 text."""
    samples = []
    for path in map(Path, PROSE_FILES):
        if path.is_file():
            chunks = _prose_chunks(path.read_text(encoding="utf-8", errors="replace"))
            samples += [Sample(f"{path.name.lower()}-{i + 1}", chunk.encode(), "text/plain; charset=utf-8")
                        for i, chunk in enumerate(chunks[:CHUNKS_PER_FILE])]
    if not samples:
        samples = [Sample(f"builtin-{i + 1}", text.encode(), "text/plain; charset=utf-8")
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
