"""`kserve`: the model as a `kserve.Model` run by KServe 0.21's `ModelServer`, outside Kubernetes.

The server is `kserve_server.py` (KServe's custom-model pattern: a Model subclass, `ModelServer().start`).
Study settings that reach it: `server.workers` (ModelServer's `--workers`; above 1, uvicorn worker
processes that each load their own model, beside the parent's, which KServe's pattern loads before it
starts), `server.threads` and `server.runtime` (through the served-model folder). The model's predict
is synchronous, as in KServe's examples, so each process answers one request at a time.
`servingbench tune` searches workers, threads and runtime (not the protocol, which is the client's
choice). `server.options.kserve`: protocol, the request format:
  v1  POST /v1/models/<name>:predict, {"instances": [{"b64": ...}]}, KServe's V1 protocol with bytes
      base64-encoded as it documents;
  v2  POST /v2/models/<name>/infer, the Open Inference Protocol in JSON, the sample a base64 BYTES
      input (KServe 0.21 decodes binary BYTES inputs as UTF-8 text, which image bytes are not).
The HTTP server listens on 127.0.0.1 only (KServe hard-codes 0.0.0.0: see kserve_server.py); its gRPC
server is off (`--enable_grpc false`), as servingbench talks HTTP.

KServe's pins (psutil<6) conflict with servingbench's, so it runs from a layered environment
(`servingbench install kserve`).

Server-side time from KServe's Prometheus metrics at /metrics on the HTTP port, by model_name:
`request_predict_seconds` (a histogram: the Model's predict, i.e. decoding, pre/postprocessing and
the network of servingbench's model) as inference, and with `request_preprocess_seconds` and
`request_postprocess_seconds` (KServe's own handlers, no-ops here) as the server's time. They start
once the request is parsed and the event loop gets to it: HTTP parsing and time queued on the event
loop are not in them, and KServe has no queue metric. Each worker process keeps its own registry and
/metrics answers from whichever took the connection, so with workers > 1 there are no server metrics.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from servingbench.adapters import kserve_v2
from servingbench.adapters.base import Artifact
from servingbench.adapters.http_metrics import get_text, prometheus_counters
from servingbench.adapters.python_framework import PythonFrameworkAdapter
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import ModelSpec, Output, Sample

# KServe's histograms in servingbench's names (see Adapter.scrape_metrics), in seconds; one model per server.
INFERENCE_METRICS = {"request_predict_seconds_count": "requests_total",
                     "request_predict_seconds_sum": "inference_us_total"}
SERVER_METRICS = {f"request_{stage}_seconds_sum": "server_us_total" for stage in ("preprocess", "predict", "postprocess")}


class KServeAdapter(PythonFrameworkAdapter):
    name = "kserve"
    description = "KServe ModelServer (a kserve.Model, V1 or V2 protocol), without Kubernetes"
    server_packages = ("kserve",)
    venv_requirements = ("kserve==0.21.0",)
    option_defaults = {"protocol": "v2"}
    option_choices = {"protocol": ("v1", "v2")}

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        tmp = run_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        argv = (self.python, "-m", "servingbench.adapters.kserve_server", "--model_dir", str(artifact.path),
                "--model_name", artifact.model, "--http_port", str(ports.http),
                "--workers", str(self.study.server.workers), "--enable_grpc", "false")
        base = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=base, ready_url=f"{base}/v2/models/{artifact.model}/ready", argv=argv, cwd=run_dir,
                          env={**self.server_env(), "TMPDIR": str(tmp)})

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        if self.settings["protocol"] == "v1":
            body = json.dumps({"instances": [{"b64": base64.b64encode(sample.data).decode()}]}).encode()
            return PreparedRequest(path=f"/v1/models/{model.name}:predict", body=body,
                                   headers={"Content-Type": "application/json"}, sample=sample.name)
        body, headers = kserve_v2.encode_sample(sample.data)
        return PreparedRequest(path=f"/v2/models/{model.name}/infer", body=body, headers=headers, sample=sample.name)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        if self.settings["protocol"] == "v1":
            return json.loads(body)["predictions"][0]
        return kserve_v2.decode_answer(body)

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        if self.study.server.workers > 1:
            return {}
        text = get_text(f"{launch.base_url}/metrics")
        if not text:
            return {}
        # Zero until the first request creates the labelled series.
        found = {**dict.fromkeys([*INFERENCE_METRICS.values(), *SERVER_METRICS.values()], 0.0),
                 **prometheus_counters(text, INFERENCE_METRICS, {}), **prometheus_counters(text, SERVER_METRICS, {})}
        return {k: v * 1e6 if k.endswith("_us_total") else v for k, v in found.items()}
