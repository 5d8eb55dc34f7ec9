"""Bring up what a LaunchSpec describes, wait until it is ready, watch it, and always take it down."""
from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from servingbench.launch.contracts import LaunchSpec
from servingbench.launch.process import ManagedProcess, exit_words, probe_ready, wait_ready

# After a trial a live server answers its readiness check at once; a busy one may take a few seconds.
READY_RECHECK_S = 10.0


@dataclass
class RunningServer:
    """A server that was ready: its process (None for one servingbench did not start) and how long start-up took."""

    spec: LaunchSpec
    process: ManagedProcess | None
    startup_s: float

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def problem(self) -> str | None:
        """Why this server can no longer be measured (its process exited, or it stopped answering), or None."""
        if self.process is not None and self.process.exited() is not None:
            return f"the server {exit_words(self.process.exited())}"
        deadline = time.monotonic() + READY_RECHECK_S
        while (problem := probe_ready(self.spec.ready_url, self.spec.ready_status, self.spec.ready_body,
                                      self.spec.ready_headers)) is not None:
            if time.monotonic() > deadline:
                return f"the server stopped answering its readiness check at {self.spec.ready_url} ({problem})"
            time.sleep(0.5)
        return None

    def log_tail(self) -> str:
        return self.process.log_tail() if self.process else ""


@contextmanager
def running_server(spec: LaunchSpec, log_path: Path, name: str, timeout_s: float,
                   on_wait: Callable[[float], None] | None = None) -> Iterator[RunningServer]:
    """Yields the server once `spec.ready_url` answers; stops it (and its scratch folders) on the way out."""
    timeout_s = spec.ready_timeout_s or timeout_s
    if spec.argv is None:
        waited = wait_ready(None, spec.ready_url, timeout_s, spec.ready_status, on_wait, spec.ready_headers)
        yield RunningServer(spec, None, waited)
        return
    proc = ManagedProcess(spec.argv, log_path, env={**os.environ, **spec.env}, cwd=spec.cwd, name=name)
    try:
        with proc:
            waited = wait_ready(proc, spec.ready_url, timeout_s, spec.ready_status, on_wait, spec.ready_headers,
                                spec.fatal_log_patterns, spec.ready_body)
            yield RunningServer(spec, proc, waited)
    finally:
        for scratch in spec.scratch_dirs:
            shutil.rmtree(scratch, ignore_errors=True)
