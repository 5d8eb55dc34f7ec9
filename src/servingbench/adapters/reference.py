"""`reference`: the model run in-process behind a minimal HTTP server — the bare baseline.

Whatever a framework adds on top of this (queueing, serialisation, workers, protocol) is its
serving overhead. The server itself is `reference_server.py`. It reads `server.threads` (torch threads)
only, always runs the eager model (on `server.device`, as the served-model folder says) and has one
process: `servingbench tune` searches its threads.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from servingbench.adapters.base import Adapter, Artifact, Availability, Host, Knob, core_knobs
from servingbench.adapters.http_metrics import get_json
from servingbench.adapters.served_model import write_served_model
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample


class ReferenceAdapter(Adapter):
    name = "reference"
    description = "the model in-process behind a minimal HTTP server (baseline)"

    def availability(self) -> Availability:
        if importlib.util.find_spec("torch") is None:
            return Availability(False, "models need `pip install 'servingbench[models]'` (torch is missing here)")
        return Availability(True, details={"python": sys.executable})

    def knobs(self, host: Host) -> list[Knob]:
        return core_knobs(host, workers=False)

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        # The model as built, however servingbench.json's runtime is set for the frameworks.
        directory = workdir / "model"
        manifest = write_served_model(model, loaded, directory, "eager", self.study.server.threads)
        return Artifact(self.name, model.name, directory, tuple(sorted(directory.rglob("*"))), manifest.runtime)

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        threads = str(self.study.server.threads)
        argv = (sys.executable, "-m", "servingbench.adapters.reference_server", "--served-model", str(artifact.path),
                "--port", str(ports.http))
        base = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=base, ready_url=f"{base}/health", argv=argv, cwd=run_dir,
                          env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1"})

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        return PreparedRequest(path="/predict", body=sample.data, headers={"Content-Type": sample.content_type},
                               sample=sample.name)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        return json.loads(body)

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        return get_json(f"{launch.base_url}/metrics")
