"""The reaper: a small process that takes every server's whole tree down when servingbench dies, however
it dies (a SIGKILL included, which no atexit hook or signal handler sees).

servingbench starts one per process and keeps the write end of a pipe to its stdin; each child it
starts in a session of its own is announced as "watch SID" (and "forget SID" once stopped). When the pipe
reaches end-of-file, servingbench is gone: the reaper sends SIGTERM to every live process still in those
sessions, SIGKILL to those left after a grace period, removes scratch folders whose owner is dead, and
exits. Sessions, not parent links: TorchServe's Java frontend and its Python workers stay in the session
of the `torchserve` launcher that started them, but are re-parented to PID 1 when the launcher dies.
"""
from __future__ import annotations

import os
import signal
import sys
import time

from servingbench.launch.procfs import session_members
from servingbench.launch.scratch import remove_stale_scratch

GRACE_S = 5.0


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap(sessions: set[int]) -> None:
    """SIGTERM to every live process of `sessions`, SIGKILL to what is left after GRACE_S."""
    me = os.getpid()
    _signal_all(session_members(sessions, me), signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while (left := session_members(sessions, me)) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_all(left, signal.SIGKILL)


def main() -> None:
    # In a session of its own, but a Ctrl-C meant for servingbench must never end its watch early.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sessions: set[int] = set()
    for line in sys.stdin:  # until servingbench, the only writer, is gone
        verb, _, sid = line.partition(" ")
        if verb == "watch":
            sessions.add(int(sid))
        elif verb == "forget":
            sessions.discard(int(sid))
    if sessions:
        reap(sessions)
    remove_stale_scratch()


if __name__ == "__main__":
    main()
