"""`delay-server`, a test instrument and not a serving framework: the test delay server behind the adapter
interface, so that tuning can be checked against a server whose best setting is known in advance.

`server.workers` is its concurrency; past `knee` each request slows down as (workers / knee)^2, so its capacity
peaks at workers = knee. Each request spins `busy_ms` of CPU, so the CPU-seconds per request are known. Tests
register it through a `servingbench.adapters` entry point; it is not in the built-in registry.
"""
from __future__ import annotations

import sys
from pathlib import Path

from servingbench.adapters.base import Adapter, Artifact, Availability, Host, Knob
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample


class DelayServerAdapter(Adapter):
    name = "delay-server"
    description = "test instrument: the delay server, with a known service time and best worker count"
    option_defaults = {"delay_ms": 20.0, "knee": 3, "busy_ms": 0.0, "max_workers": 6}

    def availability(self) -> Availability:
        return Availability(True)

    def knobs(self, host: Host) -> list[Knob]:
        # Its workers sleep rather than compute: they are not held to the host's cores.
        return [Knob("workers", "server.workers", tuple(range(1, self.settings["max_workers"] + 1)))]

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        workdir.mkdir(parents=True, exist_ok=True)
        return Artifact(self.name, model.name, workdir)

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        s = self.settings
        argv = (sys.executable, "-m", "servingbench.testing.delay_server", "--port", str(ports.http),
                "--delay-ms", str(s["delay_ms"]), "--concurrency", str(self.study.server.workers),
                "--knee", str(s["knee"]), "--busy-ms", str(s["busy_ms"]))
        base = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=base, ready_url=f"{base}/ready", argv=argv, cwd=run_dir)

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        return PreparedRequest(path="/predict", body=sample.data, sample=sample.name)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        return None  # it answers "ok", not the model's output
