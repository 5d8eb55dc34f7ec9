"""NVIDIA Triton Inference Server: a generated model repository, the KServe v2 protocol.

As in the study, Triton's client preprocesses (decode, resize, normalise, feature extraction,
tokenisation): `request()` does it before timing and measures it; the server runs only the network.
Backends: `python` (a generated model.py running TorchScript, or BART's generate(), which the
study's TorchScript route could not serve), and for hosts whose Triton has them `pytorch`
(TorchScript `model.pt`, the study's "Triton (PyTorch)"), `onnxruntime` (`model.onnx`) and
`tensorflow` (`model.savedmodel`, the SavedModel TF Serving gets: the study's "Triton (TensorFlow)").
The server is the `tritonserver` binary bundled in the `nvidia-pytriton` wheel (python backend
only), one you give with `server.options.triton.server`, or the official image (`container_image`) run by
docker, podman or apptainer when the study sets `server.container` (launch/containers.py).

`servingbench tune` searches `server.workers` (the instance count), `server.threads`, max_batch_size
(dynamic batching) with max_queue_delay_us, and either the backend (where this host's Triton has more
than one that can serve servingbench's repositories) or, with only the python backend, `server.runtime`.
`write_config` copies the tuned model repository and gives tritonserver's command line.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import torch

from servingbench.adapters import kserve_v2
from servingbench.adapters.base import (
    Adapter,
    Artifact,
    Availability,
    ClientSideProcessing,
    Host,
    Knob,
    core_knobs,
    runtime_knob,
)
from servingbench.adapters.http_metrics import get_text, prometheus_counters
from servingbench.adapters.served_model import write_served_model
from servingbench.adapters.written_config import ServableConfig, env_command, place, written_files
from servingbench.errors import ServingbenchError
from servingbench.exports.onnx import export_onnx
from servingbench.exports.savedmodel import INPUT as SAVEDMODEL_INPUT
from servingbench.exports.savedmodel import OUTPUT as SAVEDMODEL_OUTPUT
from servingbench.exports.savedmodel import export_savedmodel, tensorflow_missing, variable_axes
from servingbench.exports.torchscript import export_torchscript
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample

DEFAULTS = {"backend": "python", "max_batch_size": 0, "max_queue_delay_us": 0, "protocol": "http",
            "binary": True, "server": None}
# The official image's backends. Its python backend has no torch or servingbench, so in a container use the
# pytorch, onnxruntime or tensorflow backend.
CONTAINER_BACKENDS = ["onnxruntime", "python", "pytorch", "tensorflow"]
PACKAGED_BACKENDS = ("python", "pytorch", "onnxruntime", "tensorflow")  # what package() writes repositories for
REPOSITORY, BACKENDS = "repository", "backends"  # in a written configuration
PROTOCOLS = ("http", "grpc")
# Copied as model.py into the repository; imported only inside Triton's stub (it needs pb_utils).
PYTHON_MODEL = Path(__file__).with_name("triton_python_model.py")
INPUT, OUTPUT = "INPUT__0", "OUTPUT__0"  # the pytorch backend's naming convention; fine for all backends
# config.pbtxt's DataType names (model_config.proto) and platforms of the backends that take one.
TRITON_TYPES = {torch.float32: "TYPE_FP32", torch.int64: "TYPE_INT64", torch.float16: "TYPE_FP16",
                torch.int32: "TYPE_INT32"}
PLATFORMS = {"pytorch": "pytorch_libtorch", "tensorflow": "tensorflow_savedmodel"}
# Triton's counters, in servingbench's names (see Adapter.scrape_metrics).
METRICS = {"nv_inference_request_success": "requests_total",
           "nv_inference_request_duration_us": "server_us_total",
           "nv_inference_queue_duration_us": "queue_us_total",
           "nv_inference_compute_input_duration_us": "compute_input_us_total",
           "nv_inference_compute_infer_duration_us": "inference_us_total",
           "nv_inference_compute_output_duration_us": "compute_output_us_total"}


def _triton_type(tensor: torch.Tensor) -> str:
    if tensor.dtype not in TRITON_TYPES:
        raise ServingbenchError(f"no Triton type for {tensor.dtype}")
    return TRITON_TYPES[tensor.dtype]


def _varying_axes(shapes: list[torch.Size]) -> tuple[int, ...]:
    """Axes (besides the batch) whose size differs between shapes: the output side of savedmodel.variable_axes."""
    return tuple(axis for axis in range(1, len(shapes[0])) if len({shape[axis] for shape in shapes}) > 1)


def _dims(shape: torch.Size, variable: tuple[int, ...], batching: bool) -> list[int]:
    """config.pbtxt dims: -1 on variable axes; no batch axis when Triton batches (it adds its own)."""
    dims = [-1 if axis in variable else size for axis, size in enumerate(shape)]
    return dims[1:] if batching else dims


def _bundled_root() -> Path | None:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "tritonserver"
    return root if (root / "bin" / "tritonserver").exists() else None


class TritonAdapter(Adapter):
    name = "triton"
    description = ("NVIDIA Triton Inference Server (KServe v2 over HTTP or gRPC; python/pytorch/onnxruntime/"
                   "tensorflow backends)")

    option_defaults = DEFAULTS
    option_choices = {"protocol": PROTOCOLS}
    container_image = "nvcr.io/nvidia/tritonserver:24.10-py3"  # Triton 2.51, the server nvidia-pytriton bundles
    runs_servingbench_code = False  # its pytorch, onnxruntime and tensorflow backends serve exports as they are

    def __init__(self, study):
        super().__init__(study)
        self._client = ClientSideProcessing()

    # -- where the server and its backends are -------------------------------------------------------------

    def _server(self) -> Path | None:
        if self.settings["server"]:
            return Path(self.settings["server"])
        bundled = _bundled_root()
        return bundled / "bin" / "tritonserver" if bundled else None

    def backends(self) -> list[str]:
        """Backends this host's Triton has: the bundled server ships only python."""
        if self.container:
            return CONTAINER_BACKENDS
        if self.settings["server"]:
            backend_dir = Path(self.settings["server"]).parent.parent / "backends"
            return sorted(p.name for p in backend_dir.iterdir()) if backend_dir.is_dir() else []
        return ["python"] if _bundled_root() else []

    def servable_backends(self) -> list[str]:
        """Backends this host's Triton has and servingbench can package for, the configured one first. The
        official image's python backend has no torch or servingbench; TensorFlow exports need TensorFlow here."""
        found = [b for b in self.backends() if b in PACKAGED_BACKENDS
                 and not (b == "python" and self.container)
                 and not (b == "tensorflow" and tensorflow_missing())]
        return sorted(found, key=lambda b: b != self.settings["backend"])

    def knobs(self, host: Host) -> list[Knob]:
        backends = self.servable_backends()
        if len(backends) > 1:
            network = [self.option_knob("backend", "backend", tuple(backends))]
        else:  # the python backend runs the served-model folder in server.runtime
            network = [runtime_knob()] if backends == ["python"] else []
        return [*core_knobs(host), *network, *self.batching_knobs("max_batch_size", 0, "max_queue_delay_us", "us")]

    def availability(self) -> Availability:
        if self.container:  # its runtime was found when the adapter was made
            return Availability(True, details={"container": str(self.container), "backends": ",".join(self.backends())})
        server = self._server()
        if server is None:
            return Availability(False, "no tritonserver: ./setup.sh installs the one bundled in nvidia-pytriton "
                                       "(pip install --no-deps nvidia-pytriton==0.7.0), or set "
                                       "server.options.triton.server to a tritonserver binary")
        if not server.exists():
            return Availability(False, f"tritonserver not found at {server}")
        return Availability(True, details={"server": str(server), "backends": ",".join(self.backends())})

    def unsupported_reason(self, model: ModelSpec) -> str | None:
        backend = self.settings["backend"]
        if backend == "python" and self.container:
            return ("the official image's python backend has no torch or servingbench: set "
                    "server.options.triton.backend to pytorch, onnxruntime or tensorflow")
        if backend not in self.backends():
            return (f"Triton's {backend} backend is not installed here (this host has: "
                    f"{', '.join(self.backends()) or 'none'}); use the official container on a host that has it")
        return None

    # -- packaging ----------------------------------------------------------------------------------------------

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        backend = self.settings["backend"]
        repo = workdir / "model_repository"
        shutil.rmtree(repo, ignore_errors=True)
        version = repo / model.name / "1"
        version.mkdir(parents=True)
        runtime = f"{backend} backend"
        if backend == "python":  # the served-model folder every Python framework runs, in server.runtime
            shutil.copy(PYTHON_MODEL, version / "model.py")
            served = write_served_model(model, loaded, version, self.study.server.runtime, self.study.server.threads)
            runtime = f"{served.runtime} (python backend)"
        elif backend == "pytorch":
            export_torchscript(model, loaded, version / "model.pt")
        elif backend == "onnxruntime":
            export_onnx(model, loaded, version / "model.onnx", INPUT, OUTPUT)
        elif backend == "tensorflow":  # the SavedModel TF Serving gets, under the study's "Triton (TensorFlow)"
            export_savedmodel(model, loaded, version / "model.savedmodel", variable_axes(model, loaded))
        else:
            raise ServingbenchError(f"server.options.triton.backend: unknown backend '{backend}'")
        (repo / model.name / "config.pbtxt").write_text(self.model_config(model, loaded))
        self._client.keep(model.name, loaded)
        return Artifact(self.name, model.name, repo, tuple(sorted(repo.rglob("*"))), runtime)

    def _tensor_names(self) -> tuple[str, str]:
        """A SavedModel's tensors are its signature's; every other backend uses INPUT__0 / OUTPUT__0."""
        return (SAVEDMODEL_INPUT, SAVEDMODEL_OUTPUT) if self.settings["backend"] == "tensorflow" else (INPUT, OUTPUT)

    def model_config(self, model: ModelSpec, loaded: LoadedModel) -> str:
        """config.pbtxt declaring the real tensor shapes, so that perf_analyzer and Model Analyzer take the
        repository without --shape: a dimension is the samples' size, or -1 where the samples differ along it
        (Triton rejects a request whose shape differs from a fixed dimension). With max_batch_size > 0 the
        batch dimension is left out: Triton adds its own."""
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2

        inputs = [loaded.preprocess(sample.data) for sample in model.samples()]
        with torch.inference_mode():
            outputs = [loaded.network(tensor) for tensor in inputs]
        backend, batch = self.settings["backend"], self.settings["max_batch_size"]
        config = model_config_pb2.ModelConfig(name=model.name, max_batch_size=batch)
        if backend in PLATFORMS:
            config.platform = PLATFORMS[backend]
        else:
            config.backend = backend
        input_name, output_name = self._tensor_names()
        config.input.add(name=input_name, data_type=_triton_type(inputs[0]),
                         dims=_dims(inputs[0].shape, variable_axes(model, loaded), batch))
        config.output.add(name=output_name, data_type=_triton_type(outputs[0]),
                          dims=_dims(outputs[0].shape, _varying_axes([o.shape for o in outputs]), batch))
        config.instance_group.add(kind=model_config_pb2.ModelInstanceGroup.KIND_CPU, count=self.study.server.workers)
        if batch:
            config.dynamic_batching.max_queue_delay_microseconds = self.settings["max_queue_delay_us"]
        return text_format.MessageToString(config)

    # -- launching ----------------------------------------------------------------------------------------------

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        flags = ["--disable-auto-complete-config",
                 "--http-address=127.0.0.1", f"--http-port={ports.http}",
                 "--grpc-address=127.0.0.1", f"--grpc-port={ports.grpc}",
                 "--metrics-address=127.0.0.1", f"--metrics-port={ports.metrics}", "--exit-timeout-secs=10"]
        if self.container:  # the image's tritonserver; the repository is bound at the same path
            argv = ["tritonserver", f"--model-repository={artifact.path}", *flags]
        else:
            argv = [str(self._server()), f"--model-repository={artifact.path}", *flags, "--allow-gpu-metrics=false"]
        env = {"OMP_NUM_THREADS": str(self.study.server.threads), "MKL_NUM_THREADS": str(self.study.server.threads),
               "HF_HUB_OFFLINE": "1",
               # the stub finds its Python on PATH: the one servingbench (and torch) is installed in
               "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        bundled = _bundled_root()
        if bundled and not self.settings["server"] and not self.container:
            argv += [f"--backend-directory={self._backend_dir(bundled, run_dir)}",
                     f"--cache-directory={bundled / 'caches'}"]
            # The wheel's libraries, and this Python's libpython (else the stub loads the system one).
            env["LD_LIBRARY_PATH"] = ":".join(
                p for p in (str(bundled.parent.parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR"),
                            os.environ.get("LD_LIBRARY_PATH")) if p)
        http = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=http if self.settings["protocol"] == "http" else f"grpc://127.0.0.1:{ports.grpc}",
                          ready_url=f"{http}/v2/models/{artifact.model}/ready", argv=tuple(argv), env=env, cwd=run_dir,
                          fatal_log_patterns=("failed to load", "UNAVAILABLE: Internal"))

    def write_config(self, artifact: Artifact, launch: LaunchSpec, run_dir: Path, target: Path) -> ServableConfig:
        """A copy of the model repository as served (config.pbtxt with its instance count and dynamic batching,
        model.py; the network hard-linked) and tritonserver's command line with the launch's flags and environment
        on it: `repository/` (bound by absolute path into a container), and for the bundled server its python
        backend, copied to `backends/`."""
        assert launch.argv is not None
        place(artifact.path, target / REPOSITORY)
        moved = {str(artifact.path): str((target / REPOSITORY).resolve()) if self.container else REPOSITORY}
        bundled = _bundled_root()
        if bundled and f"--backend-directory={run_dir / BACKENDS}" in launch.argv:
            self._backend_dir(bundled, target)
            moved[str(run_dir / BACKENDS)] = BACKENDS
        argv = list(launch.argv)
        for old, new in moved.items():
            argv = [arg.replace(old, new) for arg in argv]
        return ServableConfig(written_files(target), env_command(launch.env, argv))

    @staticmethod
    def _backend_dir(bundled: Path, run_dir: Path) -> Path:
        """The bundled python backend plus the stub for this Python version, as Triton expects them."""
        backend = run_dir / BACKENDS / "python"
        backend.mkdir(parents=True, exist_ok=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        for source in (bundled / "backends" / "python" / "libtriton_python.so",
                       bundled / "backends" / "python" / "triton_python_backend_utils.py",
                       bundled / "python_backend_stubs" / version / "triton_python_backend_stub"):
            if not source.exists():
                raise ServingbenchError(f"the bundled Triton lacks {source.name} for Python {version}")
            shutil.copy2(source, backend / source.name)
        return backend.parent

    # -- requests -----------------------------------------------------------------------------------------------

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        tensor, preprocess_ms = self._client.preprocess(model.name, sample)
        input_name, output_name = self._tensor_names()
        if self.settings["protocol"] == "grpc":
            from servingbench.adapters import kserve_v2_grpc

            return PreparedRequest(protocol="grpc", path=kserve_v2_grpc.INFER_METHOD,
                                   body=kserve_v2_grpc.encode_request(model.name, {input_name: tensor}, [output_name]),
                                   sample=sample.name, client_preprocess_ms=preprocess_ms)
        body, headers = kserve_v2.encode_request({input_name: tensor}, [output_name], self.settings["binary"])
        return PreparedRequest(path=f"/v2/models/{model.name}/infer", body=body, headers=headers, sample=sample.name,
                               client_preprocess_ms=preprocess_ms)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        if self.settings["protocol"] == "grpc":
            from servingbench.adapters import kserve_v2_grpc

            outputs = kserve_v2_grpc.decode_response(body)
        else:
            outputs = kserve_v2.decode_response(body)
        return self._client.postprocess(model.name, outputs[self._tensor_names()[1]])

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        return prometheus_counters(get_text(f"http://127.0.0.1:{ports.metrics}/metrics"), METRICS, {})
