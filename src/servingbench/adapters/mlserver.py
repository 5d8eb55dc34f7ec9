"""`mlserver`: the model as a custom MLServer 1.7 runtime (`mlserver_runtime.py`), run by `mlserver start`.

The launch writes an MLServer folder in the run folder: settings.json (host 127.0.0.1, the HTTP,
gRPC and metrics ports: MLServer always starts its gRPC server, so it gets a loopback port too, which
gRPC listens on through an IPv4-mapped IPv6 socket, ::ffff:127.0.0.1;
`parallel_workers` = `server.workers`, inference processes each with its own model; its metrics
and environments folders) and <model>/model-settings.json (the runtime, the served-model folder as
`parameters.uri`, adaptive batching). `server.threads` and `server.runtime` reach the model through
the served-model folder. `server.options.mlserver`: max_batch_size and max_batch_time (seconds),
MLServer's adaptive batching, off (0) by default as in MLServer. `servingbench tune` searches workers,
threads, runtime and both batching options. Requests are Open Inference Protocol (V2) JSON: the
sample's bytes as a base64 BYTES input; MLServer's REST API has no binary extension.

MLServer's pins (fastapi<0.116, starlette<0.47) conflict with servingbench's, so it runs from a
layered environment (`servingbench install mlserver`), with an older uvloop than servingbench's.

Server-side time from MLServer's Prometheus endpoint on its metrics port (all processes summed):
`rest_server_request_duration_seconds` (starlette_exporter's histogram of the /infer route, every
status code) runs from the request entering MLServer's ASGI app to its answer: body parsing, the
model call, the JSON answer. `model_infer_request_duration` (a summary, by model) times the model
call inside it, which includes waiting for a parallel worker and for an adaptive batch, so it is
reported apart as `model_infer` rather than as inference; MLServer has no queue-time metric.
"""
from __future__ import annotations

import json
from pathlib import Path

from servingbench.adapters import kserve_v2
from servingbench.adapters.base import Artifact, Host, Knob
from servingbench.adapters.http_metrics import get_text, prometheus_counters
from servingbench.adapters.python_framework import PythonFrameworkAdapter
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import ModelSpec, Output, Sample

RUNTIME = "servingbench.adapters.mlserver_runtime.ServedModelRuntime"
INFER_ROUTE = "/v2/models/{model_name}/infer"  # starlette_exporter labels requests by route template
# MLServer's metrics in servingbench's names (see Adapter.scrape_metrics), in seconds. One model per
# server: the model's summary needs no label filter; the HTTP histogram is filtered to the /infer route.
# (MLServer's docs name it rest_server_requests_duration_seconds; 1.7.1 exports "request", singular.)
HTTP_METRICS = {"rest_server_request_duration_seconds_count": "requests_total",
                "rest_server_request_duration_seconds_sum": "server_us_total"}
MODEL_METRICS = {"model_infer_request_duration_sum": "model_infer_us_total"}


class MLServerAdapter(PythonFrameworkAdapter):
    name = "mlserver"
    description = "Seldon MLServer (a custom MLModel runtime, V2 inference protocol)"
    server_packages = ("mlserver",)
    container_image = "seldonio/mlserver:1.7.1"
    # uvloop 0.22 no longer makes a loop in get_event_loop(), which MLServer's workers call at start.
    venv_requirements = ("mlserver==1.7.1", "uvloop<0.22")
    option_defaults = {"max_batch_size": 0, "max_batch_time": 0.0}

    def knobs(self, host: Host) -> list[Knob]:
        # MLServer batches when max_batch_size > 1 and max_batch_time > 0.
        return [*super().knobs(host), *self.batching_knobs("max_batch_size", 0, "max_batch_time", "s")]

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        folder = run_dir / "mlserver"
        settings = {"host": "127.0.0.1", "http_port": ports.http, "grpc_port": ports.grpc,
                    "metrics_port": ports.metrics, "parallel_workers": self.study.server.workers,
                    "metrics_dir": str(folder / "metrics"), "environments_dir": str(folder / "envs")}
        model_settings = {"name": artifact.model, "implementation": RUNTIME, "parameters": {"uri": str(artifact.path)},
                          "max_batch_size": self.settings["max_batch_size"],
                          "max_batch_time": self.settings["max_batch_time"]}
        (folder / artifact.model).mkdir(parents=True, exist_ok=True)
        (folder / "settings.json").write_text(json.dumps(settings, indent=1))
        (folder / artifact.model / "model-settings.json").write_text(json.dumps(model_settings, indent=1))
        tmp = run_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        base = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=base, ready_url=f"{base}/v2/models/{artifact.model}/ready", cwd=run_dir,
                          argv=(str(Path(self.python).with_name("mlserver")), "start", str(folder)),
                          env={**self.server_env(), "TMPDIR": str(tmp)},
                          # A worker that dies at start is restarted forever: fail at once instead.
                          fatal_log_patterns=("Some of the models failed to load", "stopped unexpectedly"))

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        body, headers = kserve_v2.encode_sample(sample.data)
        return PreparedRequest(path=f"/v2/models/{model.name}/infer", body=body, headers=headers, sample=sample.name)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        return kserve_v2.decode_answer(body)

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        text = get_text(f"http://127.0.0.1:{ports.metrics}/metrics")
        if not text:
            return {}
        # Zero until the first request creates the labelled series.
        found = {**dict.fromkeys([*HTTP_METRICS.values(), *MODEL_METRICS.values()], 0.0),
                 **prometheus_counters(text, HTTP_METRICS, {"path": INFER_ROUTE}),
                 **prometheus_counters(text, MODEL_METRICS, {})}
        return {k: v * 1e6 if k.endswith("_us_total") else v for k, v in found.items()}
