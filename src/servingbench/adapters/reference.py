"""`reference`: the model run in-process behind a minimal HTTP server — the bare baseline.

Whatever a framework adds on top of this (queueing, serialisation, workers, protocol) is its
serving overhead. The server itself is `reference_server.py`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from servingbench.adapters.base import Adapter, Artifact, Availability
from servingbench.adapters.http_metrics import get_json
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample


class ReferenceAdapter(Adapter):
    name = "reference"
    description = "the model in-process behind a minimal HTTP server (baseline)"

    def availability(self) -> Availability:
        return Availability(True, details={"python": sys.executable})

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        directory = loaded.save(workdir / "model")
        return Artifact(self.name, model.name, directory, tuple(sorted(directory.rglob("*"))))

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        threads = str(self.study.server.threads)
        argv = (sys.executable, "-m", "servingbench.adapters.reference_server", "--model", artifact.model,
                "--size", self.study.size, "--weights", str(artifact.path), "--port", str(ports.http),
                "--threads", threads)
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
