"""Writing files and folders so that readers see either nothing or all of it.

A crash or a concurrent run never leaves a half-written summary, cache entry or asset behind. What is written
gets the user's umask, like any file they create (tempfile's private 0600/0700 modes would not).
"""
from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _scratch_path(target: Path) -> Path:
    """A hidden sibling of `target` no other writer picks (created with O_EXCL / mkdir, so a clash fails)."""
    return target.parent / f".{target.name}.{secrets.token_hex(8)}"


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a scratch directory that becomes `target` only if the block completes.

    If another process created `target` meanwhile, its copy is kept and ours is dropped.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = _scratch_path(target)
    scratch.mkdir()  # mode 0o777 less the umask
    try:
        yield scratch
        try:
            os.rename(scratch, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_atomically(target: Path, data: bytes | str, executable: bool = False) -> None:
    """Write via a temporary file and rename, so readers see either nothing or all of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = _scratch_path(target)
    mode = 0o777 if executable else 0o666  # less the umask, as a shell's or an editor's new file
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.replace(scratch, target)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
