"""Child processes that never outlive servingbench.

Each child runs in its own session (process group), with its output in a log file. Stopping sends
SIGTERM to the whole group, then SIGKILL after a grace period. Every live child is tracked, and an
atexit hook plus a SIGTERM handler stop them all, so neither Ctrl-C, an exception nor a SIGTERM of
servingbench leaves a server behind. A SIGKILL runs none of that: for it, every child's session is also
announced to the reaper (launch/reaper.py), a watchdog process that takes those sessions down once
servingbench is gone.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

from servingbench.errors import ServerStartError
from servingbench.launch.scratch import remove_stale_scratch

_LIVE: set["ManagedProcess"] = set()
_PR_SET_PDEATHSIG = 1
_REAPERS: dict[int, subprocess.Popen] = {}  # this process's pid -> its reaper (a fork needs its own)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if servingbench itself is killed (even by SIGKILL)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the atexit and signal hooks still apply
        pass


def _tell_reaper(verb: str, session: int) -> None:
    """Announce a child's session ("watch") or its end ("forget") to this process's reaper, started on first use."""
    try:
        reaper = _REAPERS.get(os.getpid())
        if reaper is None:
            reaper = _REAPERS[os.getpid()] = subprocess.Popen(
                [sys.executable, "-m", "servingbench.launch.reaper"], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        assert reaper.stdin is not None
        reaper.stdin.write(f"{verb} {session}\n")
        reaper.stdin.flush()
    except OSError:  # no reaper (it could not start, or was killed): the atexit and signal hooks still apply
        pass


def exit_words(code: int | None) -> str:
    """How a process ended, in words: "exited with code 3", "exited with code -9 (killed by SIGKILL)"."""
    if code is not None and code < 0:
        try:
            return f"exited with code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f"exited with code {code} (killed by signal {-code})"
    return f"exited with code {code}"


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A child process in its own process group, logging to `log_path`."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, name: str = "process"):
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.name = name
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> "ManagedProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                              start_new_session=True, preexec_fn=_die_with_parent)
            except OSError as exc:
                raise ServerStartError(f"{self.name}: cannot start {self.argv[0]}: {exc.strerror}") from None
        _LIVE.add(self)
        _tell_reaper("watch", self.popen.pid)  # start_new_session: the child's pid is its session id
        return self

    def exited(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_path, lines)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL what is left after `grace_s`."""
        if self.popen is None:
            return
        pgid = self.popen.pid  # start_new_session: the child leads its own group
        _signal_group(pgid, signal.SIGTERM)
        _signal_group(pgid, signal.SIGCONT)  # a frozen (SIGSTOPped) server acts on SIGTERM only once resumed
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        # Workers of a server (e.g. TorchServe's Python workers) may outlive their parent.
        _signal_group(pgid, signal.SIGKILL)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:  # until the kernel has removed them all
            time.sleep(0.05)
        _LIVE.discard(self)
        _tell_reaper("forget", pgid)

    def __enter__(self) -> "ManagedProcess":
        return self.start() if self.popen is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def probe_ready(url: str, expect_status: int | None = 200, expect_body: str | None = None,
                headers: Callable[[], dict[str, str]] | None = None, timeout_s: float = 2.0) -> str | None:
    """One readiness request: None when `url` answers `expect_status` (None: any HTTP answer) with
    `expect_body` in it, else what it answered instead."""
    try:
        request = urllib.request.Request(url, headers=headers() if headers else {})
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            body = resp.read().decode(errors="replace")
            if expect_status in (None, resp.status) and (expect_body is None or expect_body in body):
                return None
            return f"HTTP {resp.status}: {body[:100]}"
    except urllib.error.HTTPError as exc:
        return None if expect_status in (None, exc.code) else f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def wait_ready(proc: ManagedProcess | None, url: str, timeout_s: float, expect_status: int | None = 200,
               on_wait: Callable[[float], None] | None = None,
               headers: Callable[[], dict[str, str]] | None = None,
               fatal_log_patterns: tuple[str, ...] = (), expect_body: str | None = None) -> float:
    """Poll `url` until it answers `expect_status` (None: any HTTP answer); returns seconds waited.

    Fails early when the process exits, and with the last log lines when the timeout passes
    (a server can hang while loading, e.g. Triton with a broken library path).
    """
    start = time.monotonic()
    while True:
        waited = time.monotonic() - start
        if proc is not None and proc.exited() is not None:
            raise ServerStartError(f"{proc.name} {exit_words(proc.exited())} before it was ready",
                                   proc.log_tail())
        if proc is not None and fatal_log_patterns:
            log = proc.log_tail(200)
            fatal = next((p for p in fatal_log_patterns if p in log), None)
            if fatal:
                raise ServerStartError(f"{proc.name} will not get ready: its log says '{fatal}'", proc.log_tail(30))
        problem = probe_ready(url, expect_status, expect_body, headers)
        if problem is None:
            return waited
        if waited > timeout_s:
            what = proc.name if proc else url
            log = proc.log_tail() if proc else ""
            raise ServerStartError(f"{what} not ready after {timeout_s:.0f} s at {url} ({problem})", log)
        if on_wait:
            on_wait(waited)
        time.sleep(0.2)


def stop_all() -> None:
    for proc in list(_LIVE):
        proc.stop(grace_s=5)


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C (so `with` blocks stop their children), but exits 143, not 130."""


def _on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated


def install_cleanup() -> None:
    """Called once by the CLI: stop every child on exit and on SIGTERM; remove what a killed run left."""
    remove_stale_scratch()
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _on_sigterm)
