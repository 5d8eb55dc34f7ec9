"""`litserve`: the model as a LitServe LitAPI, run by a LitServer (uvicorn front processes, inference workers).

The server is the script `litserve_app.py`. Study settings that reach it: `server.workers` (LitServer's
`workers_per_device` on one device, the CPU or the study's GPU (`server.device`): inference processes,
each with its own model, and as many uvicorn processes), `server.threads` and `server.runtime` (through the served-model folder);
`server.options.litserve`: max_batch_size (LitAPI's, 1: no batching) and batch_timeout_s (LitAPI's
`batch_timeout`: how long a batch waits to fill), timeout_s (LitServer's `timeout`: a request waiting
longer gets 504). A bad input fails its request with 400, and with batching on, the whole batch it
came in, as LitServe fails a batch whose predict raises. `servingbench tune` searches workers, threads,
runtime, max_batch_size and batch_timeout_s (not timeout_s, a limit rather than a setting to tune).

Requests carry the sample's raw bytes like every framework's: LitServe would read the body as JSON,
but its decode_request takes it as `bytes` (see litserve_app.py). LitServe has no server-side
metrics of its own (its Logger API leaves collecting and exposing them to the user), so none here.
"""
from __future__ import annotations

from pathlib import Path

from servingbench.adapters.base import Artifact, Host, Knob
from servingbench.adapters.python_framework import PythonFrameworkAdapter
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.launch.scratch import scratch_dir


class LitServeAdapter(PythonFrameworkAdapter):
    name = "litserve"
    description = "Lightning AI LitServe (a LitAPI run by LitServer)"
    server_packages = ("litserve",)
    image_extras = ("litserve",)
    option_defaults = {"max_batch_size": 1, "batch_timeout_s": 0.0, "timeout_s": 30.0}

    def knobs(self, host: Host) -> list[Knob]:
        return [*super().knobs(host), *self.batching_knobs("max_batch_size", 1, "batch_timeout_s", "s")]

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        s = self.settings
        argv = (self.python, "-m", "servingbench.adapters.litserve_app", "--model-dir", str(artifact.path),
                "--port", str(ports.http), "--workers", str(self.study.server.workers),
                "--max-batch-size", str(s["max_batch_size"]), "--batch-timeout-s", str(s["batch_timeout_s"]),
                "--timeout-s", str(s["timeout_s"]), "--accelerator", "cuda" if self.placement.gpu else "cpu")
        tmp = scratch_dir("litserve", run_dir)  # multiprocessing's manager listens on a Unix socket in it
        base = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=base, ready_url=f"{base}/health", argv=argv, cwd=run_dir,
                          env={**self.server_env(), "TMPDIR": str(tmp)}, scratch_dirs=(tmp,),
                          fatal_log_patterns=("Error setting up worker",))  # a worker's setup raised
