"""NVIDIA Triton Inference Server: a generated model repository, the KServe v2 protocol.

Two pipelines (config.Pipeline), each a repository of its own:
  end_to_end    (the default) the request carries the sample's raw bytes (JPEG, WAV, UTF-8 text) as a
                uint8 vector `sample`, and the answer is the task output's JSON text, a uint8 vector
                `answer`. `<name>` is an ensemble of `<name>_preprocess` and `<name>_postprocess`
                (python-backend models running servingbench's processing of the model,
                triton_processing_model.py) around the network, `<name>_network`. uint8, not BYTES:
                Triton 2.51's python stub hands BYTES inputs over as uninitialised memory under numpy 2.
  network_only  as in the study, Triton's client preprocesses (decode, resize, normalise, feature
                extraction, tokenisation): `request()` does it before timing and measures it; the
                server runs only the network, `<name>`, and the client postprocesses its output.
Backends of the network: `python` (a generated model.py running TorchScript, or BART's generate(), which the
study's TorchScript route could not serve), and for hosts whose Triton has them `pytorch`
(TorchScript `model.pt`, the study's "Triton (PyTorch)"), `onnxruntime` (`model.onnx`) and
`tensorflow` (`model.savedmodel`, the SavedModel TF Serving gets: the study's "Triton (TensorFlow)").
The server is the `tritonserver` binary bundled in the `nvidia-pytriton` wheel (python backend
only), one you give with `server.options.triton.server`, or the official image (`container_image`) run by
docker, podman or apptainer when the study sets `server.container` (launch/containers.py); that image's
python backend has no torch or servingbench, so it serves network_only.

`servingbench tune` searches `server.workers` (the instance count), `server.threads`, max_batch_size
(dynamic batching) with max_queue_delay_us, and either the backend (where this host's Triton has more
than one that can serve servingbench's repositories) or, with only the python backend, `server.runtime`.
In end_to_end the pre- and postprocessing models get the network's instance count and max_batch_size too.
On a GPU (`server.device`) the network's instances are KIND_GPU on the server's only GPU, the processing models
stay KIND_CPU.
`write_config` copies the tuned model repository and gives tritonserver's command line.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import numpy as np
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
from servingbench.adapters.served_model import MANIFEST, ServedModelManifest, write_served_model
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
# end_to_end's pre- and postprocessing models: `<name>_<step>`, each running PROCESSING_MODEL as model.py.
PROCESSING_MODEL = Path(__file__).with_name("triton_processing_model.py")
STEPS = ("preprocess", "postprocess")
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
    pipelines = ("end_to_end", "network_only")

    def __init__(self, study, pipeline=None):
        super().__init__(study, pipeline)
        self.client_processing = ClientSideProcessing()

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
        if self.pipeline == "end_to_end" and self.container:
            return ("end_to_end runs the model's pre- and postprocessing in python-backend models, and the official "
                    "image's python backend has no torch or servingbench: use the pipeline network_only there, or "
                    "the bundled tritonserver")
        if self.pipeline == "end_to_end" and "python" not in self.backends():
            return ("end_to_end runs the model's pre- and postprocessing in python-backend models, and this "
                    "tritonserver has no python backend")
        return None

    # -- packaging ----------------------------------------------------------------------------------------------

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        """network_only: one model, `model.name`, the network. end_to_end: the ensemble `model.name` chaining
        `<name>_preprocess`, the network `<name>_network` and `<name>_postprocess` (module docstring)."""
        repo = workdir / "model_repository"
        shutil.rmtree(repo, ignore_errors=True)
        network = self._network_name(model)
        runtime = self._write_network(model, loaded, repo / network / "1")
        for name, config in self.model_configs(model, loaded).items():
            (repo / name / "1").mkdir(parents=True, exist_ok=True)  # an ensemble's version folder stays empty
            (repo / name / "config.pbtxt").write_text(config)
        if self.pipeline == "end_to_end":
            for step in STEPS:
                version = repo / f"{model.name}_{step}" / "1"
                shutil.copy(PROCESSING_MODEL, version / "model.py")
                loaded.save_processing(version)
                (version / MANIFEST).write_text(ServedModelManifest(
                    model=model.reference(), size=model.size, threads=self.study.server.threads,
                    note=f"the {step}ing of {model.name} only (triton_processing_model.py)").model_dump_json(indent=1))
            runtime += f"; {model.name}'s pre- and postprocessing in python-backend models, chained by an ensemble"
        else:
            self.client_processing.keep(model.name, loaded)
        return Artifact(self.name, model.name, repo, tuple(sorted(repo.rglob("*"))), runtime)

    def _network_name(self, model: ModelSpec) -> str:
        """The network's model in the repository: the served model itself in network_only."""
        return f"{model.name}_network" if self.pipeline == "end_to_end" else model.name

    def _write_network(self, model: ModelSpec, loaded: LoadedModel, version: Path) -> str:
        """The network in the backend's format under `version`; returns what runs it."""
        backend = self.settings["backend"]
        version.mkdir(parents=True)
        if backend == "python":  # the served-model folder every Python framework runs, in server.runtime
            shutil.copy(PYTHON_MODEL, version / "model.py")
            served = write_served_model(model, loaded, version, self.study.server.runtime, self.study.server.threads)
            return f"{served.runtime} (python backend)"
        if backend == "pytorch":
            export_torchscript(model, loaded, version / "model.pt")
        elif backend == "onnxruntime":
            export_onnx(model, loaded, version / "model.onnx", INPUT, OUTPUT)
        elif backend == "tensorflow":  # the SavedModel TF Serving gets, under the study's "Triton (TensorFlow)"
            export_savedmodel(model, loaded, version / "model.savedmodel", variable_axes(model, loaded))
        else:
            raise ServingbenchError(f"server.options.triton.backend: unknown backend '{backend}'")
        return f"{backend} backend"

    def _tensor_names(self) -> tuple[str, str]:
        """A SavedModel's tensors are its signature's; every other backend uses INPUT__0 / OUTPUT__0."""
        return (SAVEDMODEL_INPUT, SAVEDMODEL_OUTPUT) if self.settings["backend"] == "tensorflow" else (INPUT, OUTPUT)

    def model_config(self, model: ModelSpec, loaded: LoadedModel) -> str:
        """The network model's config.pbtxt (model_configs has every model's of the pipeline)."""
        return self.model_configs(model, loaded)[self._network_name(model)]

    def model_configs(self, model: ModelSpec, loaded: LoadedModel) -> dict[str, str]:
        """config.pbtxt of each model in the repository, by model name.

        The network's declares the real tensor shapes, so that perf_analyzer and Model Analyzer take the
        repository without --shape: a dimension is the samples' size, or -1 where the samples differ along it
        (Triton rejects a request whose shape differs from a fixed dimension). With max_batch_size > 0 the
        batch dimension is left out: Triton adds its own. In end_to_end the pre- and postprocessing models
        and the ensemble take the same max_batch_size (an ensemble batches only if every step does); the
        sample and the answer are uint8 vectors, [1, -1] with the batch dimension."""
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2 as pb

        inputs = [loaded.preprocess(sample.data) for sample in model.samples()]
        with torch.inference_mode():
            outputs = [loaded.run_network(tensor) for tensor in inputs]
        backend, batch = self.settings["backend"], self.settings["max_batch_size"]
        input_name, output_name = self._tensor_names()
        # (name, data type, dims) of the network's input and output
        network_in = (input_name, _triton_type(inputs[0]), _dims(inputs[0].shape, variable_axes(model, loaded), batch))
        network_out = (output_name, _triton_type(outputs[0]),
                       _dims(outputs[0].shape, _varying_axes([o.shape for o in outputs]), batch))
        wire = _dims(torch.Size([1, 1]), (1,), batch)  # bytes of one sample, one answer
        sample, answer = (kserve_v2.SAMPLE_INPUT, "TYPE_UINT8", wire), (kserve_v2.ANSWER_OUTPUT, "TYPE_UINT8", wire)

        def config(name: str, tensor_in: tuple, tensor_out: tuple, **fields) -> pb.ModelConfig:
            made = pb.ModelConfig(name=name, max_batch_size=batch, **fields)
            for add, (tensor, data_type, dims) in ((made.input.add, tensor_in), (made.output.add, tensor_out)):
                add(name=tensor, data_type=pb.DataType.Value(data_type), dims=dims)
            if fields.get("platform") != "ensemble":
                made.instance_group.add(kind=pb.ModelInstanceGroup.KIND_CPU, count=self.study.server.workers)
            return made

        network = config(self._network_name(model), network_in, network_out,
                         **({"platform": PLATFORMS[backend]} if backend in PLATFORMS else {"backend": backend}))
        if self.placement.gpu:  # the network's instances on the study's GPU, the only one the server sees
            del network.instance_group[:]
            network.instance_group.add(kind=pb.ModelInstanceGroup.KIND_GPU, count=self.study.server.workers, gpus=[0])
            if backend == "python":  # hand its inputs over where they are, on the GPU too (DLPack, no copy)
                network.parameters["FORCE_CPU_ONLY_INPUT_TENSORS"].string_value = "no"
        if batch:
            network.dynamic_batching.max_queue_delay_microseconds = self.settings["max_queue_delay_us"]
        configs = [network]
        if self.pipeline == "end_to_end":
            steps = {"preprocess": (sample, network_in), "postprocess": (network_out, answer)}
            for step, (tensor_in, tensor_out) in steps.items():
                made = config(f"{model.name}_{step}", tensor_in, tensor_out, backend="python")
                made.parameters["step"].string_value = step
                configs.append(made)
            ensemble = config(model.name, sample, answer, platform="ensemble")
            # ensemble tensor names: the request's, then the network's input and output between the steps
            for step, (inner_in, outer_in), (inner_out, outer_out) in (
                    (f"{model.name}_preprocess", (sample[0], sample[0]), (network_in[0], "network_input")),
                    (network.name, (network_in[0], "network_input"), (network_out[0], "network_output")),
                    (f"{model.name}_postprocess", (network_out[0], "network_output"), (answer[0], answer[0]))):
                added = ensemble.ensemble_scheduling.step.add(model_name=step, model_version=-1)
                added.input_map[inner_in] = outer_in
                added.output_map[inner_out] = outer_out
            configs.append(ensemble)
        return {made.name: text_format.MessageToString(made) for made in configs}

    # -- launching ----------------------------------------------------------------------------------------------

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        flags = ["--disable-auto-complete-config",
                 "--http-address=127.0.0.1", f"--http-port={ports.http}",
                 "--grpc-address=127.0.0.1", f"--grpc-port={ports.grpc}",
                 "--metrics-address=127.0.0.1", f"--metrics-port={ports.metrics}", "--exit-timeout-secs=10"]
        if self.container:  # the image's tritonserver; the repository is bound at the same path
            argv = ["tritonserver", f"--model-repository={artifact.path}", *flags]
        else:
            argv = [str(self._server()), f"--model-repository={artifact.path}", *flags,
                    f"--allow-gpu-metrics={str(self.placement.gpu is not None).lower()}"]
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
        """network_only: the network's input tensor, preprocessed here (measured apart). end_to_end: the sample's
        bytes as they are, a uint8 vector (triton_processing_model.py says why not BYTES), no client work."""
        if self.pipeline == "end_to_end":
            inputs = {kserve_v2.SAMPLE_INPUT: np.frombuffer(sample.data, dtype=np.uint8).reshape(1, -1)}
            output, preprocess_ms = kserve_v2.ANSWER_OUTPUT, 0.0
        else:
            tensor, preprocess_ms = self.client_processing.preprocess(model.name, sample)
            input_name, output = self._tensor_names()
            inputs = {input_name: tensor}
        if self.settings["protocol"] == "grpc":
            from servingbench.adapters import kserve_v2_grpc

            return PreparedRequest(protocol="grpc", path=kserve_v2_grpc.INFER_METHOD,
                                   body=kserve_v2_grpc.encode_request(model.name, inputs, [output]),
                                   sample=sample.name, client_preprocess_ms=preprocess_ms)
        body, headers = kserve_v2.encode_request(inputs, [output], self.settings["binary"])
        return PreparedRequest(path=f"/v2/models/{model.name}/infer", body=body, headers=headers, sample=sample.name,
                               client_preprocess_ms=preprocess_ms)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        if self.settings["protocol"] == "grpc":
            from servingbench.adapters import kserve_v2_grpc

            outputs = kserve_v2_grpc.decode_response(body)
        else:
            outputs = kserve_v2.decode_response(body)
        if self.pipeline == "end_to_end":  # the task output's JSON text
            return json.loads(outputs[kserve_v2.ANSWER_OUTPUT].astype(np.uint8).tobytes())
        return self.client_processing.postprocess(model.name, outputs[self._tensor_names()[1]])

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        """The served model's counters. In end_to_end the ensemble's requests and their time in the server; its
        queue time with each step's (the ensemble counts only its own), and the compute times of the steps
        (which the ensemble's own sum)."""
        text = get_text(f"http://127.0.0.1:{ports.metrics}/metrics")
        served = launch.ready_url.rsplit("/", 2)[-2]  # .../v2/models/<name>/ready
        counters = prometheus_counters(text, METRICS, {"model": served})
        if self.pipeline == "end_to_end":
            counters["queue_us_total"] = counters.get("queue_us_total", 0.0)
            for step in (f"{served}_preprocess", f"{served}_network", f"{served}_postprocess"):
                counters["queue_us_total"] += prometheus_counters(text, METRICS, {"model": step}).get(
                    "queue_us_total", 0.0)
        return counters
