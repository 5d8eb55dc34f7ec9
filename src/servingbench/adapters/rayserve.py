"""`rayserve`: the model as a Ray Serve deployment, on a private single-node Ray started for the server.

The served-model folder behind a plain Serve deployment class (`rayserve_app.py`): the constructor loads
the model, the call answers the raw POST body; Serve's HTTP proxy in front, on 127.0.0.1. Study settings
that reach it: `server.workers` (num_replicas), `server.threads` (torch threads per replica),
`server.runtime`; `server.options.rayserve`: max_ongoing_requests (requests a replica takes at once;
Ray's default 5), max_batch_size (Serve's dynamic batching, `@serve.batch`; 1, the default, is off) and
batch_wait_timeout_s (how long a batch waits to fill; Serve's default 0.01). Batches only fill up to
max_ongoing_requests per replica, so raise both together. `servingbench tune` searches replicas
(workers), threads, runtime, max_batch_size up to the study's max_ongoing_requests, and
batch_wait_timeout_s; `write_config` writes the tuned deployment as a Serve config file (`serve run`).

Server-side time comes from Ray's own Prometheus metrics (see METRICS), exported by Ray's metrics agent
a second or two late: scrape_metrics reads them once they have settled.
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from servingbench.adapters.base import BATCH_SIZES, Artifact, Host, Knob
from servingbench.adapters.http_metrics import get_text, prometheus_counters
from servingbench.adapters.python_framework import PythonFrameworkAdapter
from servingbench.adapters.written_config import ServableConfig, place, written_files
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.launch.scratch import scratch_dir

APP_NAME = "servingbench"  # the Serve application's name, a label on its metrics
SERVE_CONFIG = "serve_config.yaml"
# Ray's metrics, in servingbench's names (see Adapter.scrape_metrics); sums in milliseconds. The proxy sees
# a request from arrival to answer (server time), the replica only the deployment's own call (inference);
# the difference is Serve's (proxy, routing, waiting for a free replica slot, transfer): the queue time.
METRICS = {"ray_serve_num_http_requests_total": "requests_total",
           "ray_serve_http_request_latency_ms_sum": "server_ms_total",
           "ray_serve_deployment_processing_latency_ms_sum": "inference_ms_total"}
# Ray 2.60's metrics agent rebuilds every histogram from its bucket counts, each observation at its bucket's
# midpoint, so a sum is only as exact as the buckets (Serve's default 1, 2, 5, 10, 20, 50, 100... ms would
# be off by up to a third). Bounds 5 % apart from 0.1 ms to 10 min keep each observation within 2.5 %.
LATENCY_BUCKETS_MS = ",".join(f"{0.1 * 1.05 ** i:.4g}" for i in range(321))
# Every Ray process pushes its metrics each second: two equal readings this far apart hold every request
# answered before the first.
METRICS_SETTLE_S = 2.0
METRICS_SETTLE_TIMEOUT_S = 20.0


class RayServeAdapter(PythonFrameworkAdapter):
    name = "rayserve"
    description = "Ray Serve: the model in a Serve deployment, Serve's HTTP proxy in front (private local Ray)"
    server_packages = ("ray",)
    container_image = "rayproject/ray:2.60.0-py311-cpu"
    image_extras = ("rayserve",)
    option_defaults = {"max_ongoing_requests": 5, "max_batch_size": 1, "batch_wait_timeout_s": 0.01}

    def knobs(self, host: Host) -> list[Knob]:
        sizes = tuple(size for size in BATCH_SIZES if size <= self.settings["max_ongoing_requests"])
        return [*super().knobs(host),
                *self.batching_knobs("max_batch_size", 1, "batch_wait_timeout_s", "s", sizes)]

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        scratch = scratch_dir("ray", run_dir)  # Ray's temp folder: its session, logs and Unix sockets
        # Ray authenticates its own processes with a token (its default); this run's own, not ~/.ray/auth_token.
        token = scratch / "auth_token"
        token.touch(mode=0o600)
        token.write_text(secrets.token_hex(32))
        s = self.settings
        argv = (self.python, "-m", "servingbench.adapters.rayserve_app", "--model-dir", str(artifact.path),
                "--port", str(ports.http), "--metrics-port", str(ports.metrics), "--temp-dir", str(scratch),
                "--replicas", str(self.study.server.workers), "--max-ongoing-requests", str(s["max_ongoing_requests"]),
                "--max-batch-size", str(s["max_batch_size"]), "--batch-wait-timeout-s", str(s["batch_wait_timeout_s"]),
                "--gpus-per-replica", str(self._gpus_per_replica()))
        env = {**self.server_env(), "TMPDIR": str(scratch),
               # Else Ray swaps the 127.0.0.1 node address for the host's network address, and its gRPC
               # servers (GCS, raylet, workers, agents) listen on every interface.
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
               "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
               "RAY_SERVE_REQUEST_LATENCY_BUCKETS_MS": LATENCY_BUCKETS_MS,
               # Fixed by default (44217, 44227): free ports, so that two servers can run side by side.
               "AUTOSCALER_METRIC_PORT": str(ports.extra[0]), "DASHBOARD_METRIC_PORT": str(ports.extra[1])}
        base = f"http://127.0.0.1:{ports.http}"
        # /health answers from a replica, and says RUNNING once Serve has every replica up (model loaded).
        return LaunchSpec(base_url=base, ready_url=f"{base}/health", ready_body='"RUNNING"', argv=argv, env=env,
                          cwd=run_dir, scratch_dirs=(scratch,))

    def write_config(self, artifact: Artifact, launch: LaunchSpec, run_dir: Path, target: Path) -> ServableConfig:
        """A Serve config file: the application (rayserve_app's builder) on the launch's port, its deployment's
        replicas, max_ongoing_requests and batching, the served-model folder copied to `model/` (weights
        hard-linked). `serve run` starts a Ray of its own defaults for it (not servingbench's private loopback one)."""
        model_dir = target / "model"
        place(artifact.path, model_dir)
        s = self.settings
        env = {name: value for name, value in self.server_env().items() if name != "PATH"}
        config = {"proxy_location": "HeadOnly",
                  "http_options": {"host": "127.0.0.1", "port": urlsplit(launch.base_url).port},
                  "applications": [{
                      "name": APP_NAME, "route_prefix": "/", "import_path": "servingbench.adapters.rayserve_app:app",
                      "args": {"model_dir": str(model_dir.resolve()), "max_batch_size": s["max_batch_size"],
                               "batch_wait_timeout_s": s["batch_wait_timeout_s"]},
                      "runtime_env": {"env_vars": env},
                      "deployments": [{"name": "ServedModel", "num_replicas": self.study.server.workers,
                                       "max_ongoing_requests": s["max_ongoing_requests"],
                                       "ray_actor_options": {"num_cpus": 0,
                                                             "num_gpus": self._gpus_per_replica()}}]}]}
        (target / SERVE_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
        return ServableConfig(written_files(target), f"serve run {SERVE_CONFIG}")

    def _gpus_per_replica(self) -> float:
        """The study's GPU shared by the replicas; none on the CPU (Ray hides GPUs from actors that ask for none)."""
        return 1 / self.study.server.workers if self.placement.gpu else 0

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        """Ray's counters once they include every request answered so far: Ray reports them late (each of its
        processes once a second), so the page is read until it stops changing."""
        url = f"http://127.0.0.1:{ports.metrics}/metrics"
        counters = _read_counters(url)
        deadline = time.monotonic() + METRICS_SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            time.sleep(METRICS_SETTLE_S)
            latest = _read_counters(url)
            if latest == counters:
                break
            counters = latest
        return counters


def _read_counters(url: str) -> dict[str, float]:
    found = prometheus_counters(get_text(url), METRICS, {"application": APP_NAME})
    counters = {k.replace("_ms_total", "_us_total"): v * 1000 if k.endswith("_ms_total") else v
                for k, v in found.items()}
    if "server_us_total" in counters and "inference_us_total" in counters:
        counters["queue_us_total"] = counters["server_us_total"] - counters["inference_us_total"]
    return counters
