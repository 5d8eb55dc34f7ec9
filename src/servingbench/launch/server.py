"""Bring up what a LaunchSpec describes, wait until it is ready, and always take it down."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from servingbench.adapters.base import LaunchSpec
from servingbench.launch.process import ManagedProcess, wait_ready


@contextmanager
def running_server(spec: LaunchSpec, log_path: Path, name: str, timeout_s: float,
                   on_wait: Callable[[float], None] | None = None) -> Iterator[ManagedProcess | None]:
    """Yields the server process (None for an external server) once `spec.ready_url` answers."""
    timeout_s = spec.ready_timeout_s or timeout_s
    if spec.argv is None:
        wait_ready(None, spec.ready_url, timeout_s, spec.ready_status, on_wait, spec.ready_headers)
        yield None
        return
    proc = ManagedProcess(spec.argv, log_path, env={**os.environ, **spec.env}, cwd=spec.cwd, name=name)
    try:
        with proc:
            wait_ready(proc, spec.ready_url, timeout_s, spec.ready_status, on_wait, spec.ready_headers,
                       spec.fatal_log_patterns, spec.ready_body)
            yield proc
    finally:
        for scratch in spec.scratch_dirs:
            shutil.rmtree(scratch, ignore_errors=True)
