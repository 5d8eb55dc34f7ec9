"""Container runtimes an adapter can run a framework's official image with (docker, podman, apptainer)."""
from __future__ import annotations

import shutil
import subprocess

CONTAINER_RUNTIMES = ("docker", "podman", "apptainer")


def find_runtime(wanted: str | None) -> str | None:
    """The runtime asked for, or the first one installed."""
    return next((r for r in ([wanted] if wanted else CONTAINER_RUNTIMES) if shutil.which(r)), None)


def runtime_problem(wanted: str | None) -> str | None:
    """Why no container can run here, or None."""
    runtime = find_runtime(wanted)
    if runtime is None:
        return f"no container runtime ({', '.join(CONTAINER_RUNTIMES)}) is installed"
    if runtime == "docker" and subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode:
        return "docker is installed but its engine is not running (or not reachable)"
    return None
