"""Writing a deployment's configuration where a person keeps it (`servingbench tune`'s winner): big files
hard-linked, small ones copied, and the command that serves it."""
from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

# Files above this size are hard-linked into a written configuration (weights, archives), smaller ones (configs,
# code) copied, so that editing the written configuration never edits the results' copy.
LINK_ABOVE_BYTES = 64 << 10


@dataclass(frozen=True)
class ServableConfig:
    """A deployment's configuration in the framework's own format, written where a person keeps it."""

    files: tuple[Path, ...]  # what was written under `target`
    command: str  # serves it with the framework's own tool, run from `target` (shell words)


def place(source: Path, destination: Path) -> None:
    """Put a file or a folder's files at `destination`: big files hard-linked where both sides are on one
    filesystem (else copied), small ones copied."""
    if source.is_dir():
        shutil.copytree(source, destination, copy_function=lambda a, b: place(Path(a), Path(b)),
                        ignore=shutil.ignore_patterns("__pycache__"))
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.stat().st_size > LINK_ABOVE_BYTES:
        try:
            os.link(source, destination)
            return
        except OSError:  # another filesystem, or one without hard links
            pass
    shutil.copy2(source, destination)


def written_files(target: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in target.rglob("*") if p.is_file()))


def env_command(env: dict[str, str], argv: list[str] | tuple[str, ...]) -> str:
    """Shell words running `argv` with `env` added to the caller's environment."""
    return shlex.join(["env", *(f"{k}={v}" for k, v in env.items()), *argv] if env else list(argv))
