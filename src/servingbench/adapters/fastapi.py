"""`fastapi`: the model behind FastAPI + uvicorn workers — the do-it-yourself baseline many teams ship.

The same model, samples and wire format as `reference`; only the server differs (an ASGI app in
uvicorn, `server.workers` processes, each with its own model), so the two compare the bare
threading server with the usual Python web stack. The app is `fastapi_app.py`. It has no
server-side counters, as such a service usually has none.
"""
from __future__ import annotations

import importlib.util
import sys
from importlib.metadata import version
from pathlib import Path

from servingbench.adapters.base import Artifact, Availability
from servingbench.adapters.reference import ReferenceAdapter
from servingbench.launch.contracts import LaunchSpec, Ports

SERVER_PACKAGES = ("fastapi", "uvicorn")


class FastAPIAdapter(ReferenceAdapter):
    name = "fastapi"
    description = "the model behind FastAPI + uvicorn workers (the do-it-yourself baseline)"

    def availability(self) -> Availability:
        missing = [p for p in SERVER_PACKAGES if importlib.util.find_spec(p) is None]
        if missing:
            return Availability(False, f"{' and '.join(missing)} not installed: pip install -e '.[fastapi]' "
                                       "(./setup.sh does)")
        return Availability(True, details={p: version(p) for p in SERVER_PACKAGES})

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        threads = str(self.study.server.threads)
        argv = (sys.executable, "-m", "uvicorn", "servingbench.adapters.fastapi_app:app", "--host", "127.0.0.1",
                "--port", str(ports.http), "--workers", str(self.study.server.workers), "--no-access-log")
        base = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=base, ready_url=f"{base}/health", argv=argv, cwd=run_dir,
                          env={"SERVINGBENCH_MODEL": artifact.model, "SERVINGBENCH_SIZE": self.study.size,
                               "SERVINGBENCH_WEIGHTS": str(artifact.path), "SERVINGBENCH_THREADS": threads,
                               "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1"})

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        return {}
