"""Sample CPU and memory of whole process trees (and GPUs via NVML) at a fixed interval.

A server is often several processes (TorchServe's Java frontend and Python workers, Triton's
stubs), so each sample sums the process and all its descendants.
"""
from __future__ import annotations

import csv
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from servingbench.devices import VISIBLE, visible_indices

MB = 2**20
COLUMNS = ("t_ns", "server_cpu_percent", "server_rss_mb", "load_cpu_percent", "load_rss_mb",
           "gpu_util_percent", "gpu_memory_mb", "gpu_power_w")


class ProcessTree:
    """CPU % (of one core) and RSS of a process and its descendants, measured between calls."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self._known: dict[int, psutil.Process] = {}

    def sample(self) -> tuple[float, float] | None:
        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return None
        cpu = rss = 0.0
        for proc in members:
            # psutil reports CPU since the previous call on the same object: keep one per pid.
            known = self._known.setdefault(proc.pid, proc)
            try:
                cpu += known.cpu_percent(None)
                rss += known.memory_info().rss / MB
            except psutil.Error:
                self._known.pop(proc.pid, None)
        return cpu, rss

    def rss_mb(self) -> float | None:
        sampled = self.sample()
        return sampled[1] if sampled else None


class Gpus:
    """Utilisation, memory and power summed over the NVIDIA GPUs this process may use (CUDA_VISIBLE_DEVICES: a
    study's GPU once devices.pin ran, none on the CPU); absent (None) without NVML."""

    def __init__(self):
        self.handles = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            indices = visible_indices(list(range(pynvml.nvmlDeviceGetCount())), os.environ.get(VISIBLE))
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
        except Exception:  # no package, no driver, no GPU: telemetry goes on without it
            self.handles = []

    def sample(self) -> tuple[float, float, float | None] | None:
        if not self.handles:
            return None
        util = sum(self.nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self.handles)
        memory = sum(self.nvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles) / MB
        return float(util), memory, self._power_w()

    def _power_w(self) -> float | None:
        try:  # milliwatts; some boards (and vGPUs) don't report it
            return sum(self.nvml.nvmlDeviceGetPowerUsage(h) for h in self.handles) / 1000
        except self.nvml.NVMLError:
            return None


@dataclass
class ResourceSampler:
    """Samples in a background thread from start() until stop(); rows are COLUMNS tuples."""

    interval_s: float = 0.5
    server_pid: int | None = None
    load_pid: int | None = None
    rows: list[tuple] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._gpus = Gpus()
        self._trees: dict[str, ProcessTree] = {}

    def watch(self, role: str, pid: int) -> None:
        """Start sampling a process tree ("server" or "load") — the load generator starts later."""
        try:
            tree = ProcessTree(pid)
        except psutil.Error:
            return
        tree.sample()  # the first CPU reading is always 0: prime it
        self._trees[role] = tree

    def start(self) -> "ResourceSampler":
        if self.server_pid:
            self.watch("server", self.server_pid)
        self._thread.start()
        return self

    def stop(self) -> list[tuple]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.rows

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            server = self._trees["server"].sample() if "server" in self._trees else None
            load = self._trees["load"].sample() if "load" in self._trees else None
            gpu = self._gpus.sample()
            self.rows.append((time.perf_counter_ns(), *(server or (None, None)), *(load or (None, None)),
                              *(gpu or (None, None, None))))


def write_csv(rows: list[tuple], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
