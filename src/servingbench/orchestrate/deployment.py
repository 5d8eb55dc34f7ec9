"""Evidence of what serving took: the packaged files, cold start, memory at idle."""
from __future__ import annotations

import zipfile
from pathlib import Path

from servingbench.adapters.base import Artifact

# What a person writes or edits to serve a model (configs, handlers), as opposed to weights and vocabularies.
HAND_WRITTEN = {".py", ".pbtxt", ".properties", ".yaml", ".yml", ".sh"}
CONFIG_FILES = ("*.properties", "*.pbtxt", "*.yaml")  # launch configs written next to the artifact


def package_stats(artifact: Artifact, run_dir: Path) -> tuple[int, int, int]:
    """(files, bytes, lines of hand-written-kind files) of the artifact plus its launch configs."""
    files = bytes_ = lines = 0
    entries: list[tuple[str, bytes | None, int]] = []  # (name, content if hand-written kind, size)
    paths = [artifact.path] if artifact.path.is_file() else sorted(p for p in artifact.path.rglob("*") if p.is_file())
    paths += [p for pattern in CONFIG_FILES for p in run_dir.glob(pattern)]
    for path in paths:
        if zipfile.is_zipfile(path) and path.suffix == ".mar":
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    wanted = Path(info.filename).suffix in HAND_WRITTEN
                    entries.append((info.filename, archive.read(info) if wanted else None, info.file_size))
        else:
            wanted = path.suffix in HAND_WRITTEN
            entries.append((path.name, path.read_bytes() if wanted else None, path.stat().st_size))
    for _, content, size in entries:
        files += 1
        bytes_ += size
        if content is not None:
            lines += content.count(b"\n")
    return files, bytes_, lines
