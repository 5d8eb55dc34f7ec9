"""environment.json: what the numbers were measured on."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path

import psutil

import servingbench
from servingbench.devices import Placement, gpu_host
from servingbench.launch.containers import Container, image_digest
from servingbench.results.store import now_iso

PACKAGES = ("torch", "transformers", "locust", "gevent", "numpy", "pyarrow",
            "torchserve", "nvidia-pytriton", "tensorflow", "mlcommons-loadgen")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(servingbench.__file__).parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def collect_environment(threads: int, containers: dict[str, Container] | None = None,
                        placement: Placement | None = None) -> dict:
    """What the numbers were measured on; `containers`: the framework servers that ran in one, by framework;
    `placement`: the device the study's models ran on (None: no model of servingbench's, an endpoint)."""
    return {
        "servingbench": servingbench.__version__,
        "git_sha": _git_sha(),
        "started_at": now_iso(),
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": {"model": _cpu_model(), "logical_cores": psutil.cpu_count(), "physical_cores": psutil.cpu_count(False)},
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        **gpu_host().as_json(),
        "device": placement.label if placement else None,
        "device_asked": placement.asked if placement else None,
        "threads_per_model_worker": threads,
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
        "packages": {p: v for p in PACKAGES if (v := _version(p))},
        "containers": {name: {"runtime": c.runtime, "image": c.image, "digest": image_digest(c), "gpus": c.gpus}
                       for name, c in (containers or {}).items()},
    }

