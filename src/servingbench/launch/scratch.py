"""Short scratch folders for servers that put Unix sockets in their temp folder.

A Unix socket's path may not exceed 107 bytes (103 on some systems), so a server's temp folder can't
live inside a deep run folder: it gets a short folder under the system temp dir instead, named after
a short tag of the framework and the run folder (the same run folder, the same scratch folder),
listed in the launch spec's `scratch_dirs` so that it is removed after the server stops.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path


def scratch_dir(tag: str, run_dir: Path) -> Path:
    """The (created) scratch folder /tmp/servingbench-<tag>-<8 hex digits> of a server for `run_dir`. Keep
    the tag short: Ray's socket paths inside it come within a few bytes of the limit."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:8]
    folder = Path(tempfile.gettempdir()) / f"servingbench-{tag}-{digest}"
    folder.mkdir(exist_ok=True)
    return folder
