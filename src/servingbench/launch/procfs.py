"""What Linux's /proc says about a process: its session, its start time, whether it still runs."""
from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, ...), or None when
    the process is gone. The name is in parentheses and may itself hold spaces and parentheses."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def identity(pid: int) -> str | None:
    """"PID START": a live process's id and start time (clock ticks since boot); a reused pid gets another."""
    fields = stat_fields(pid)
    return f"{pid} {fields[19]}" if fields else None


def still_running(process_identity: str) -> bool:
    """Whether the process `identity()` described is still alive (not a zombie, not a newer one on its pid)."""
    pid = process_identity.split()[0]
    fields = stat_fields(int(pid)) if pid.isdigit() else None
    return fields is not None and fields[0] != "Z" and identity(int(pid)) == process_identity


def session_members(sessions: set[int], exclude: int) -> list[int]:
    """Live (non-zombie) processes whose session id is in `sessions`, other than `exclude`."""
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        fields = stat_fields(int(entry.name))
        if fields and fields[0] != "Z" and int(fields[3]) in sessions:
            members.append(int(entry.name))
    return members
