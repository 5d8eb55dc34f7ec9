"""Short scratch folders for servers that put Unix sockets in their temp folder.

A Unix socket's path may not exceed 107 bytes (103 on some systems), so a server's temp folder can't
live inside a deep run folder: it gets a short folder under the system temp dir instead, named after
a short tag of the framework and the run folder (the same run folder, the same scratch folder),
listed in the launch spec's `scratch_dirs` so that it is removed after the server stops.

Each folder names its owner (the servingbench process, by pid and start time) in OWNER_FILE, so that a
folder left by a servingbench that was killed is recognised and removed later (remove_stale_scratch).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from servingbench.launch.procfs import identity, still_running

PREFIX = "servingbench-"
OWNER_FILE = ".servingbench-owner"


def scratch_dir(tag: str, run_dir: Path) -> Path:
    """The (created) scratch folder /tmp/servingbench-<tag>-<8 hex digits> of a server for `run_dir`. Keep
    the tag short: Ray's socket paths inside it come within a few bytes of the limit."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:8]
    folder = Path(tempfile.gettempdir()) / f"{PREFIX}{tag}-{digest}"
    folder.mkdir(exist_ok=True)
    (folder / OWNER_FILE).write_text(identity(os.getpid()) or "")
    return folder


def remove_stale_scratch() -> list[Path]:
    """Removes the scratch folders whose owner is no longer running; returns them. A folder without an owner
    file (still being made, or made by an older servingbench) is left alone."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        try:
            owner = (folder / OWNER_FILE).read_text()
        except OSError:
            continue
        if owner and not still_running(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
