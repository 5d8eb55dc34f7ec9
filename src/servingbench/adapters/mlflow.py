"""`mlflow`: the model as an MLflow pyfunc model, served by `mlflow models serve` (MLflow 3's scoring server).

Packaging saves the served-model folder as a pyfunc model (`mlflow_model.py`, run with the MLflow
environment's python); the server is `mlflow models serve --env-manager local` with `server.workers`
uvicorn workers, each loading the model before it takes a request. A request is MLflow's
/invocations JSON, `{"inputs": [<base64 of the sample's bytes>]}`, as its docs tell users to send
binary data; the answer is `{"predictions": [<task output>]}`.

Configured: loopback only (`-h 127.0.0.1`); MLflow's tracking store and temp files in the run folder;
its usage telemetry off; uvicorn's access log off (as in the fastapi baseline). MLflow's pins
(pyarrow<26, python-dateutil<3 through graphene) would downgrade the main environment, so it runs
from a layered one (`servingbench install mlflow`). No `server.options.mlflow` keys: `servingbench tune`
searches `server.workers`, `server.threads` and `server.runtime`. The scoring server has no metrics
endpoint, so there are no server-side counters.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

from servingbench.adapters.base import Artifact, Availability
from servingbench.adapters.python_framework import PythonFrameworkAdapter
from servingbench.atomic import write_atomically
from servingbench.errors import ServingbenchError
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample


class MLflowAdapter(PythonFrameworkAdapter):
    name = "mlflow"
    description = "the model as an MLflow pyfunc model behind `mlflow models serve` (uvicorn workers)"
    server_packages = ("mlflow",)
    container_image = "ghcr.io/mlflow/mlflow:v3.17.2"
    venv_requirements = ("mlflow==3.17.2",)
    predict_path = "/invocations"

    def availability(self) -> Availability:
        return self.host_availability()  # package() runs MLflow here (save_model), also for a server in a container

    def mlflow_env(self, run_dir: Path) -> dict[str, str]:
        """MLflow's tracking store and every temp file in the run folder, and no usage telemetry (on by
        default in MLflow 3: it would write ~/.config/mlflow/telemetry.json and post events)."""
        (run_dir / "tmp").mkdir(parents=True, exist_ok=True)
        return {"MLFLOW_TRACKING_URI": (run_dir / "mlruns").as_uri(), "TMPDIR": str(run_dir / "tmp"),
                "MLFLOW_DISABLE_TELEMETRY": "true"}

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        served = super().package(model, loaded, workdir)
        directory = workdir / "mlflow_model"
        shutil.rmtree(directory, ignore_errors=True)  # save_model refuses a folder that exists
        done = subprocess.run([self.python, "-m", "servingbench.adapters.mlflow_model", str(served.path),
                               str(directory)], env={**os.environ, **self.server_env(), **self.mlflow_env(workdir)},
                              cwd=workdir, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise ServingbenchError(f"mlflow.pyfunc.save_model failed: {done.stderr.strip()[-2000:]}")
        shutil.rmtree(served.path)  # the MLflow model holds its own copy (weights: twice the disk otherwise)
        return Artifact(self.name, model.name, directory, tuple(sorted(directory.rglob("*"))), served.runtime)

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        # The scoring server is started as `bash -c "exec uvicorn ..."` with whatever `uvicorn` is on
        # PATH; the layered environment has none of its own (its uvicorn is the main one's package), so
        # a shim runs the MLflow environment's python. `--app-dir` names the run folder (the default
        # "." is that folder too) so that the server's processes can be told apart by their command line.
        shim_dir = run_dir / "bin"
        shim_dir.mkdir(exist_ok=True)
        shim = shim_dir / "uvicorn"
        write_atomically(shim, f'#!/bin/sh\nexec "{self.python}" -m uvicorn --app-dir "{run_dir}" "$@"\n',
                         executable=True)
        env = self.server_env()
        argv = (str(Path(self.python).parent / "mlflow"), "models", "serve", "-m", str(artifact.path),
                "-h", "127.0.0.1", "-p", str(ports.http), "-w", str(self.study.server.workers),
                "--env-manager", "local")
        base = f"http://127.0.0.1:{ports.http}"
        # /ping is answered by a worker, and a worker takes connections only once it imported MLflow's
        # scoring app, which loads the model first.
        return LaunchSpec(base_url=base, ready_url=f"{base}/ping", argv=argv, cwd=run_dir,
                          # MLflow leaves uvicorn's access log on; off as in the fastapi baseline, which runs the
                          # same uvicorn, so that the two differ by what MLflow adds, not by a log line per request.
                          env={**env, **self.mlflow_env(run_dir), "PATH": f"{shim_dir}:{env['PATH']}",
                               "UVICORN_ACCESS_LOG": "false"},
                          # With workers > 1 uvicorn restarts a worker that failed to load the model, over and
                          # over: fail at once instead.
                          fatal_log_patterns=("Traceback (most recent call last)",))

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        body = json.dumps({"inputs": [base64.b64encode(sample.data).decode("ascii")]}).encode()
        return PreparedRequest(path=self.predict_path, body=body, headers={"Content-Type": "application/json"},
                               sample=sample.name)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        return json.loads(body)["predictions"][0]
