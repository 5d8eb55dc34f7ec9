"""The adapter base of the frameworks that run servingbench's Python model code inside their server.

FastAPI, Ray Serve, BentoML, LitServe, MLServer, KServe and MLflow all host Python: each serves the
served-model folder (`served_model.py`) in the study's `server.runtime`, with the model's own pre- and
postprocessing server side, so they differ only in what the framework adds around the same model. A
subclass names its server packages, its environment (the main one, or a layered one for conflicting
pins) and describes its launch; requests default to the sample's wire bytes at `predict_path`.

`servingbench tune` searches every one's `server.workers` and `server.threads` (their product within the
host's cores) and `server.runtime`; a subclass adds its own options' knobs (batching, ...).
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import ClassVar

from servingbench.adapters.base import Adapter, Artifact, Availability, Host, Knob, core_knobs, runtime_knob
from servingbench.adapters.served_model import write_served_model
from servingbench.launch.venvs import installed_versions, venv_dir, venv_python
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample


class PythonFrameworkAdapter(Adapter):
    server_packages: ClassVar[tuple[str, ...]]  # distributions the server needs (versions shown by `list`)
    # Non-empty: the server runs from a layered environment with these pip requirements
    # (`servingbench install NAME` creates it), else from servingbench's own.
    venv_requirements: ClassVar[tuple[str, ...]] = ()
    predict_path: ClassVar[str] = "/predict"

    @property
    def python(self) -> str:
        """The interpreter that runs this framework's server."""
        return str(venv_python(self.name)) if self.venv_requirements else sys.executable

    def availability(self) -> Availability:
        if self.container:  # the server's packages are in its image; packaging needs only servingbench here
            return Availability(True, details={"container": str(self.container)})
        return self.host_availability()

    def host_availability(self) -> Availability:
        """The server's packages installed here (in servingbench's environment or the framework's layer)."""
        if self.venv_requirements:
            if not Path(self.python).exists():
                return Availability(False, f"its environment {venv_dir(self.name)} is missing: "
                                           f"servingbench install {self.name} (./setup.sh does)")
            versions = installed_versions(Path(self.python), self.server_packages)
            if versions is None:
                return Availability(False, f"{', '.join(self.server_packages)} not all installed in "
                                           f"{venv_dir(self.name)}: servingbench install {self.name}")
            return Availability(True, details={**versions, "environment": str(venv_dir(self.name))})
        missing = [p for p in self.server_packages if importlib.util.find_spec(p.replace("-", "_")) is None]
        if missing:
            return Availability(False, f"{' and '.join(missing)} not installed: pip install -e '.[{self.name}]' "
                                       "(./setup.sh does)")
        return Availability(True, details={**{p: version(p) for p in self.server_packages}, "environment": "main"})

    def knobs(self, host: Host) -> list[Knob]:
        return [*core_knobs(host), runtime_knob()]

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        directory = workdir / "model"
        manifest = write_served_model(model, loaded, directory, self.study.server.runtime, self.study.server.threads)
        return Artifact(self.name, model.name, directory, tuple(sorted(directory.rglob("*"))), manifest.runtime)

    def server_env(self) -> dict[str, str]:
        """Threads per model worker, offline model hub; the PATH of the server's environment first."""
        threads = str(self.study.server.threads)
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1",
                "PATH": f"{Path(self.python).parent}:{os.environ.get('PATH', '')}"}

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        return PreparedRequest(path=self.predict_path, body=sample.data,
                               headers={"Content-Type": sample.content_type}, sample=sample.name)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        return json.loads(body)
