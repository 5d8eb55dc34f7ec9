"""The launch layer's contracts: which ports a server gets, and how to start it and know it is ready.

Adapters fill a LaunchSpec; launch/ runs it without knowing the framework. Every path in it is
absolute, because the server runs in its own working directory: a relative path would be read
against that folder, not the user's, and the server would not find its files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar


@dataclass(frozen=True)
class Ports:
    """Free loopback ports picked for one server; `extra` for frameworks that need more (management APIs)."""

    http: int
    grpc: int
    metrics: int
    extra: tuple[int, ...] = ()

    COUNT: ClassVar[int] = 5  # how many the launcher picks: http, grpc, metrics + 2 extra

    @classmethod
    def of(cls, ports: list[int]) -> "Ports":
        return cls(ports[0], ports[1], ports[2], tuple(ports[3:]))


# Pieces of an argument that may be a path: split at "=" (--flag=value) and ":" (mounts host:container:ro).
_PIECES = re.compile(r"[=:,]")


def relative_paths(args: tuple[str, ...] | list[str]) -> list[str]:
    """Arguments that name a file or folder by a relative path ("results/x/model_store", "./x"): the server,
    running in its own folder, would read them against that folder instead of servingbench's. Only paths
    that exist here count, so image names such as "tensorflow/serving:2.19.0" are not mistaken for one."""
    found = []
    for arg in args:
        if "://" in arg:  # URLs, docker://image
            continue
        pieces = [p for p in _PIECES.split(arg) if p and not p.startswith("/") and ("/" in p or p.startswith("."))]
        if any(Path(piece).exists() for piece in pieces):
            found.append(arg)
    return found


@dataclass(frozen=True)
class LaunchSpec:
    """How to start a server and know it is ready. `argv` None: nothing to start (external server)."""

    base_url: str
    ready_url: str
    argv: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)  # added to the launcher's base environment
    cwd: Path | None = None
    ready_status: int | None = 200  # None: any HTTP answer means reachable (external servers)
    ready_body: str | None = None  # text the ready answer must contain (e.g. a worker status)
    ready_timeout_s: float | None = None  # None: the study's server.startup_timeout_s
    ready_headers: Callable[[], dict[str, str]] | None = None  # evaluated per poll (e.g. a token file)
    # Log lines that mean the server will never get ready (a model that failed to load): fail at once
    # instead of waiting for the timeout.
    fatal_log_patterns: tuple[str, ...] = ()
    scratch_dirs: tuple[Path, ...] = ()  # the server's own temp folders outside the run folder, removed after stop

    def __post_init__(self) -> None:
        problems = [f"cwd {self.cwd}"] if self.cwd is not None and not self.cwd.is_absolute() else []
        problems += [f"scratch dir {d}" for d in self.scratch_dirs if not d.is_absolute()]
        problems += [f"argument '{a}'" for a in relative_paths(self.argv or ())]
        problems += [f"{name}={value}" for name, value in self.env.items()
                     if name not in ("PATH", "LD_LIBRARY_PATH") and relative_paths([value])]
        if problems:
            raise ValueError("a launch spec takes absolute paths only (the server runs in its own folder); "
                             f"relative: {', '.join(problems)}")
