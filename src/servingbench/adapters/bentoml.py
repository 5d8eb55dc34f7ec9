"""`bentoml`: the model as a BentoML 1.4 Service, run by `bentoml serve` (circus-managed worker processes).

The service is `bentoml_service.py`: a `@bentoml.service` class whose `/predict` API takes the sample's
raw bytes. Study settings that reach it: `server.workers` (the service's `workers`: processes, each
with its own model), `server.threads` and `server.runtime` (through the served-model folder);
`server.options.bentoml`: api_threads (the service's `threads`: how many calls of the model's sync API
a worker runs at once; BentoML's default 1, where FastAPI's thread pool runs up to 40), max_concurrency
(the service's `traffic.max_concurrency`: requests beyond it per server get 503; None, BentoML's
default, for no limit), timeout_s (`traffic.timeout`, seconds), batching (adaptive batching, off by
default as in BentoML) with max_batch_size and max_latency_ms (the batchable API's; BentoML's defaults
100 and 60000). Batching takes a second service: see bentoml_service.py. BentoML's home (its stores
and Prometheus files) is in the run folder, its temp files in a scratch folder, usage tracking off.
`servingbench tune` searches workers, threads, runtime, api_threads (workers x threads x api_threads
within the host's cores), batching and, with it on, max_batch_size; not max_latency_ms (a bound past
which BentoML refuses requests, not a wait) nor the limits max_concurrency and timeout_s.

Server-side time from BentoML's own Prometheus metrics at /metrics (same port, all workers summed):
`bentoml_service_request_total` and `bentoml_service_request_duration_seconds` (a histogram) of the
/predict endpoint, every status code. The duration runs from the request entering BentoML's ASGI app
to its last response byte being handed to the server: waiting for the worker's thread, reading and
parsing the body, the model, the JSON answer. It has no queue/inference split.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from servingbench.adapters.base import BATCH_SIZES, Artifact, Host, Knob, powers_of_two_up_to
from servingbench.adapters.http_metrics import get_text, prometheus_counters
from servingbench.adapters.python_framework import PythonFrameworkAdapter
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.launch.scratch import scratch_dir

SERVICE_MODULE = "servingbench.adapters.bentoml_service"
ARGUMENTS_FILE = "bentoml_arguments.yaml"
METRICS = {"bentoml_service_request_total": "requests_total",
           "bentoml_service_request_duration_seconds_sum": "server_s_total"}


class BentoMLAdapter(PythonFrameworkAdapter):
    name = "bentoml"
    description = "BentoML (a @bentoml.service class served by bentoml serve)"
    server_packages = ("bentoml",)
    image_extras = ("bentoml",)
    option_defaults = {"api_threads": 1, "max_concurrency": None, "timeout_s": 60, "batching": False,
                       "max_batch_size": 100, "max_latency_ms": 60000}

    def knobs(self, host: Host) -> list[Knob]:
        # Each of a worker's api_threads runs the model with server.threads torch threads.
        return [*super().knobs(host),
                self.option_knob("api_threads", "api_threads", powers_of_two_up_to(host.cores), uses_cores=True),
                self.option_knob("batching", "batching", (False, True)),
                self.option_knob("batch_size", "max_batch_size", BATCH_SIZES, needs="batching")]

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        s = self.settings
        limit = s["max_concurrency"]
        traffic = {"timeout": s["timeout_s"], **({} if limit is None else {"max_concurrency": limit})}
        model_service = {"workers": self.study.server.workers, "threads": s["api_threads"]}
        if s["batching"]:  # the model's workers behind one front worker (see bentoml_service.py)
            service, arguments = "BatchingFront", {
                "service": {"workers": 1, "traffic": traffic},
                "model_service": {**model_service, "traffic": {"timeout": s["timeout_s"]}},
                "batching": {"max_batch_size": s["max_batch_size"], "max_latency_ms": s["max_latency_ms"]}}
        else:
            service, arguments = "ServedModel", {"service": {**model_service, "traffic": traffic}}
        arguments_file = run_dir / ARGUMENTS_FILE
        arguments_file.write_text(yaml.safe_dump({"model_dir": str(artifact.path), **arguments}))
        tmp = scratch_dir("bentoml", run_dir)  # BentoML puts Unix sockets in it
        argv = (self.python, "-m", "bentoml", "serve", f"{SERVICE_MODULE}:{service}", "--host", "127.0.0.1",
                "--port", str(ports.http), "--arg-file", str(arguments_file))
        env = {**self.server_env(), "BENTOML_HOME": str(run_dir / "bentoml_home"), "BENTOML_DO_NOT_TRACK": "true",
               "TMPDIR": str(tmp)}
        base = f"http://127.0.0.1:{ports.http}"
        # A worker whose service fails to start is restarted by circus for ever: its first failure is fatal.
        return LaunchSpec(base_url=base, ready_url=f"{base}/readyz", argv=argv, env=env, cwd=run_dir,
                          scratch_dirs=(tmp,), fatal_log_patterns=("Initializing service error",))

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        found = prometheus_counters(get_text(f"{launch.base_url}/metrics"), METRICS,
                                    {"endpoint": self.predict_path})
        # The duration histogram has no sample before the first /predict answer; the request counter has.
        server_s = found.pop("server_s_total", 0.0)
        return {**found, "server_us_total": server_s * 1e6} if found else {}  # {}: no answer
