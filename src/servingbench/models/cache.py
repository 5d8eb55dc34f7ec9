"""Where generated artefacts live (built random models, speech samples, tokenizer assets).

Everything is written atomically: a crash or a concurrent run never leaves a half-written entry
that a later run would trust.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """`$SERVINGBENCH_CACHE`, else `~/.cache/servingbench`."""
    configured = os.environ.get("SERVINGBENCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "servingbench"


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a scratch directory that becomes `target` only if the block completes.

    If another process created `target` meanwhile, its copy is kept and ours is dropped.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield scratch
        try:
            os.rename(scratch, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_atomically(target: Path, data: bytes) -> None:
    """Write a file so readers see either nothing or all of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(scratch, target)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
