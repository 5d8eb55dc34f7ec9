"""Offline GPT-2 byte-level BPE files for the BART tokenizer, fetched once from PyPI.

The Hugging Face Hub is not reachable everywhere this tool runs, but PyPI usually is: the MIT-licensed
openai-whisper sdist ships GPT-2's BPE ranks as `whisper/assets/gpt2.tiktoken`. We extract that one
file (checked against a pinned hash) and convert it to the usual vocab.json + merges.txt pair.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..atomic import atomic_directory
from ..errors import ServingbenchError
from .cache import cache_dir

WHISPER_VERSION = "20250625"
TIKTOKEN_MEMBER = "whisper/assets/gpt2.tiktoken"
TIKTOKEN_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
FILES = {"gpt2.tiktoken": "gpt2.tiktoken", "gpt2-vocab.json": "vocab.json", "gpt2-merges.txt": "merges.txt"}


def assets_dir() -> Path:
    return cache_dir() / "assets" / f"gpt2-whisper-{WHISPER_VERSION}"


def ensure_assets(progress: Callable[[str], object] = print) -> dict[str, Path]:
    """Make the GPT-2 BPE files available in the cache; returns {asset name: path}. Idempotent."""
    directory = assets_dir()
    if not directory.is_dir():  # atomic_directory: if it exists, it is complete
        progress(f"fetching GPT-2 BPE from PyPI (openai-whisper=={WHISPER_VERSION} sdist) into {directory}")
        with atomic_directory(directory) as scratch:
            tiktoken_file = scratch / FILES["gpt2.tiktoken"]
            tiktoken_file.write_bytes(_download_tiktoken())
            _write_vocab_and_merges(tiktoken_file, scratch)
    return {name: directory / filename for name, filename in FILES.items()}


def _download_tiktoken() -> bytes:
    with tempfile.TemporaryDirectory(prefix="servingbench-assets-") as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   f"openai-whisper=={WHISPER_VERSION}", "-d", download_dir]
        result = subprocess.run(command, capture_output=True, text=True)
        archives = sorted(Path(download_dir).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise ServingbenchError(
                f"could not download openai-whisper=={WHISPER_VERSION} from PyPI for the BART tokenizer "
                f"({lines[-1] if lines else 'no archive'}); check network access to PyPI")
        with tarfile.open(archives[0]) as archive:
            member = next((m for m in archive.getmembers() if m.name.endswith("/" + TIKTOKEN_MEMBER)), None)
            handle = archive.extractfile(member) if member else None
            data = handle.read() if handle else b""
    if hashlib.sha256(data).hexdigest() != TIKTOKEN_SHA256:
        raise ServingbenchError(f"{TIKTOKEN_MEMBER} in openai-whisper=={WHISPER_VERSION} is missing or "
                                "has an unexpected hash; refusing to use it")
    return data


def _write_vocab_and_merges(tiktoken_file: Path, directory: Path) -> None:
    # transformers' own converter, so the merges follow the library's BPE conventions.
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab, merges = TikTokenConverter().extract_vocab_merges_from_model(str(tiktoken_file))
    (directory / FILES["gpt2-vocab.json"]).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{left} {right}" for left, right in merges]
    (directory / FILES["gpt2-merges.txt"]).write_text("\n".join(lines) + "\n", encoding="utf-8")
