"""`fastapi`: the model behind FastAPI + uvicorn workers — the do-it-yourself baseline many teams ship.

The same served model, samples and wire format as every Python framework; the server is an ASGI app
in uvicorn with `server.workers` processes, each with its own model. The app is `fastapi_app.py`. It
has no server-side counters, as such a service usually has none. `servingbench tune` searches
`server.workers`, `server.threads` and `server.runtime` (it has no options of its own).
"""
from __future__ import annotations

from pathlib import Path

from servingbench.adapters.base import Artifact
from servingbench.adapters.python_framework import PythonFrameworkAdapter
from servingbench.launch.contracts import LaunchSpec, Ports


class FastAPIAdapter(PythonFrameworkAdapter):
    name = "fastapi"
    description = "the model behind FastAPI + uvicorn workers (the do-it-yourself baseline)"
    server_packages = ("fastapi", "uvicorn")
    image_extras = ("fastapi",)

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        argv = (self.python, "-m", "uvicorn", "servingbench.adapters.fastapi_app:app", "--host", "127.0.0.1",
                "--port", str(ports.http), "--workers", str(self.study.server.workers), "--no-access-log")
        base = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=base, ready_url=f"{base}/health", argv=argv, cwd=run_dir,
                          env={**self.server_env(), "SERVINGBENCH_MODEL_DIR": str(artifact.path)})
