"""TorchServe: a .mar (or unpacked) archive with servingbench's handler, a generated config.properties.

Configured as the study did: TorchServe's defaults, a custom handler doing preprocessing server side,
binary request bodies (image / WAV bytes, text). Study settings that reach it: `server.workers`
(workers per model), `server.threads` (torch threads per worker), `server.runtime` (the network in
the handler: torchscript as the study, eager or onnxruntime); `server.options.torchserve`:
batch_size, max_batch_delay_ms, job_queue_size (TorchServe answers 503 beyond it, as the study saw
with BART), response_timeout_s, token_auth (TorchServe's default; off here unless asked for),
archive_format (auto | default | no-archive). `server.device`: GPU workers (`number_of_gpu` 1, the handler on
the gpu_id TorchServe hands it) or none (0: TorchServe would take every GPU it finds). `servingbench tune`
searches workers, threads, runtime, batch_size and max_batch_delay_ms; `write_config` writes the tuned deployment as TorchServe's own
config.properties beside a model store, served by `torchserve --ts-config config.properties`.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from servingbench.adapters import torchserve_handler
from servingbench.adapters.base import (
    Adapter,
    Artifact,
    Availability,
    Host,
    Knob,
    core_knobs,
    runtime_knob,
)
from servingbench.adapters.http_metrics import get_text, prometheus_counters
from servingbench.adapters.served_model import write_served_model
from servingbench.adapters.written_config import ServableConfig, place, written_files
from servingbench.errors import ServingbenchError
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.launch.scratch import scratch_dir
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample

DEFAULTS = {"batch_size": 1, "max_batch_delay_ms": 100, "job_queue_size": 100, "response_timeout_s": 120,
            "token_auth": False, "archive_format": "auto"}
NO_ARCHIVE_ABOVE_BYTES = 200 * 2**20
KEY_FILE = "key_file.json"
CONFIG_FILE = "config.properties"
STORE = "model-store"  # a written configuration's model store, beside its config.properties
# TorchServe's frontend counters, in servingbench's names (see Adapter.scrape_metrics). Its
# "inference latency" runs from arrival to answer, queue included: servingbench's server time.
METRICS = {"ts_inference_requests_total": "requests_total",
           "ts_queue_latency_microseconds": "queue_us_total",
           "ts_inference_latency_microseconds": "server_us_total"}


def _venv_tool(name: str) -> Path:
    return Path(sys.executable).with_name(name)


def write_properties(path: Path, properties: dict[str, object]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))


def read_properties(path: Path) -> dict[str, str]:
    """A config.properties as write_properties writes it (key=value lines, no escapes)."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


class TorchServeAdapter(Adapter):
    name = "torchserve"
    description = "PyTorch TorchServe (Java frontend, Python workers, custom handler)"

    option_defaults = DEFAULTS
    container_image = "pytorch/torchserve:0.12.0-cpu"
    image_extras = ("torchserve",)
    image_system_packages = ("openjdk-17-jre-headless",)

    def __init__(self, study, pipeline=None):
        super().__init__(study, pipeline)
        self._key_file: Path | None = None

    def availability(self) -> Availability:
        # In a container the server and its Java are in the image; the archiver still runs here (package()).
        java = shutil.which("java")
        if java is None and not self.container:
            return Availability(False, "Java 11+ is missing: apt-get install openjdk-17-jre-headless")
        tools = ("torch-model-archiver",) if self.container else ("torchserve", "torch-model-archiver")
        missing = [tool for tool in tools if not _venv_tool(tool).exists()]
        if missing:
            return Availability(False, f"{' and '.join(missing)} not installed: pip install 'servingbench[torchserve]'")
        if self.container:
            return Availability(True, details={"container": str(self.container)})
        return Availability(True, details={"torchserve": importlib.metadata.version("torchserve"), "java": str(java)})

    def knobs(self, host: Host) -> list[Knob]:
        return [*core_knobs(host), runtime_knob(), *self.batching_knobs("batch_size", 1, "max_batch_delay_ms", "ms")]

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        files_dir = workdir / "files"
        shutil.rmtree(files_dir, ignore_errors=True)
        serialized, runtime = self.write_files(model, loaded, files_dir)
        return self.archive(model, files_dir, serialized, workdir / "model_store", runtime)

    def write_files(self, model: ModelSpec, loaded: LoadedModel, files_dir: Path) -> tuple[Path, str]:
        """The archive's content, a served-model folder; returns the network file (the archiver's
        --serialized-file) and the runtime it is in."""
        manifest = write_served_model(model, loaded, files_dir, self.study.server.runtime, self.study.server.threads)
        if manifest.network_file is not None:
            return files_dir / manifest.network_file, manifest.runtime
        # eager: the weights, whatever the model saves them as (safetensors, a network file, ...): the largest file
        weights = max((p for p in files_dir.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)
        return weights, manifest.runtime

    def archive(self, model: ModelSpec, files_dir: Path, serialized: Path, store: Path, runtime: str) -> Artifact:
        """torch-model-archiver: a .mar, or a folder for big models (zipping 1.6 GB takes minutes)."""
        archive_format = self.settings["archive_format"]
        if archive_format == "auto":
            size = sum(p.stat().st_size for p in files_dir.rglob("*") if p.is_file())
            archive_format = "no-archive" if size > NO_ARCHIVE_ABOVE_BYTES else "default"
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        extra = sorted(str(p) for p in files_dir.iterdir() if p != serialized)
        argv = [str(_venv_tool("torch-model-archiver")), "--model-name", model.name, "--version", "1.0",
                "--serialized-file", str(serialized), "--handler", torchserve_handler.__file__,
                "--extra-files", ",".join(extra), "--export-path", str(store), "--archive-format", archive_format]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServingbenchError(f"torch-model-archiver failed: {(done.stderr or done.stdout).strip()[-300:]}")
        archive = store / (model.name if archive_format == "no-archive" else f"{model.name}.mar")
        return Artifact(self.name, model.name, archive, (archive,), runtime)

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        s = self.settings
        management, grpc_management = ports.extra[:2]
        tmp = scratch_dir("ts", run_dir)  # TorchServe's pid file and its workers' Unix sockets
        config = {
            "inference_address": f"http://127.0.0.1:{ports.http}",
            "management_address": f"http://127.0.0.1:{management}",
            "metrics_address": f"http://127.0.0.1:{ports.metrics}",
            "grpc_inference_address": "127.0.0.1",
            "grpc_management_address": "127.0.0.1",
            "grpc_inference_port": ports.grpc,
            "grpc_management_port": grpc_management,
            "model_store": artifact.path.parent,
            "load_models": artifact.path.name,
            "metrics_mode": "prometheus",
            # GPU workers on the study's GPU (the only one the server sees), none on the CPU: TorchServe would
            # otherwise take every GPU it finds
            "number_of_gpu": 1 if self.placement.gpu else 0,
            "job_queue_size": s["job_queue_size"],
            "default_response_timeout": s["response_timeout_s"],
            "disable_token_authorization": str(not s["token_auth"]).lower(),
            "models": json.dumps({artifact.model: {"1.0": {
                "defaultVersion": True, "marName": artifact.path.name,
                "minWorkers": self.study.server.workers, "maxWorkers": self.study.server.workers,
                "batchSize": s["batch_size"], "maxBatchDelay": s["max_batch_delay_ms"],
                "responseTimeout": s["response_timeout_s"]}}}),
            # Token auth: the frontend writes its API keys to key_file.json in its user.dir (by default the
            # working folder, inside the results): the scratch folder instead, removed after the server stops
            **({"vmargs": f"-Duser.dir={tmp}"} if s["token_auth"] else {}),
        }
        config_file = run_dir / CONFIG_FILE
        write_properties(config_file, config)
        threads = str(self.study.server.threads)
        self._key_file = tmp / KEY_FILE if s["token_auth"] else None
        base = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(
            # /ping says healthy before the worker has loaded the model; the management API knows.
            base_url=base, ready_url=f"http://127.0.0.1:{management}/models/{artifact.model}",
            ready_body='"status": "READY"', cwd=run_dir,
            argv=(str(_venv_tool("torchserve")), "--start", "--foreground", "--ncs", "--ts-config", str(config_file),
                  "--model-store", str(artifact.path.parent)),
            # Its own TMPDIR: TorchServe keeps a pid file there that would block a second server.
            env={"TMPDIR": str(tmp), "TEMP": str(tmp), "LOG_LOCATION": str(run_dir / "logs"),
                 "METRICS_LOCATION": str(run_dir / "logs"), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                 "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1"},
            ready_headers=lambda: self._auth_headers("management"),
            fatal_log_patterns=("Load model failed", "Backend worker process died"),
            scratch_dirs=(tmp,),
        )

    def write_config(self, artifact: Artifact, launch: LaunchSpec, run_dir: Path, target: Path) -> ServableConfig:
        """The launch's config.properties (addresses, workers, batching, queue, models) with its model store
        `model-store/` beside it, the archive (or unpacked archive) hard-linked there; TorchServe's own command."""
        place(artifact.path, target / STORE / artifact.path.name)
        properties = read_properties(run_dir / CONFIG_FILE)
        properties.pop("vmargs", None)  # the run's scratch folder: gone; there, the keys go to the working folder
        write_properties(target / CONFIG_FILE, {**properties, "model_store": STORE})
        argv = ["torchserve", "--start", "--foreground", "--ncs", "--ts-config", CONFIG_FILE, "--model-store", STORE]
        return ServableConfig(written_files(target), shlex.join(argv))

    def _auth_headers(self, api: str = "inference") -> dict[str, str]:
        """With token auth on, TorchServe writes one key per API to key_file.json at start-up."""
        if self._key_file is None or not self._key_file.exists():
            return {}
        try:
            key = json.loads(self._key_file.read_text())[api]["key"]
        except (json.JSONDecodeError, KeyError):  # TorchServe is still writing it: poll again
            return {}
        return {"Authorization": f"Bearer {key}"}

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        headers = {"Content-Type": sample.content_type, **self._auth_headers()}
        return PreparedRequest(path=f"/predictions/{model.name}", body=sample.data, headers=headers, sample=sample.name)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        return json.loads(body)

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        # One model per server: every sample of these counters belongs to it.
        counters = prometheus_counters(get_text(f"http://127.0.0.1:{ports.metrics}/metrics"), METRICS, {})
        if "server_us_total" in counters and "queue_us_total" in counters:
            counters["inference_us_total"] = counters["server_us_total"] - counters["queue_us_total"]
        return counters
