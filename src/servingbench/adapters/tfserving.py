"""TensorFlow Serving: a SavedModel per model (converted from the shared torch network, see
exports/savedmodel.py), `tensorflow_model_server` with a model config file, REST or gRPC.

As in the study, the client preprocesses and TF Serving runs only the network: requests are TF
Serving's REST JSON (`{"signature_name": ..., "instances": [...]}`) or a gRPC
`PredictionService/Predict` message. The server is `tensorflow_model_server` on PATH (or
`server.options.tfserving.binary`), or the `tensorflow/serving` image (`container_image`) run by docker,
podman or apptainer when the study sets `server.container`. Neither exists on the build machine (no pip or
apt package, no container engine), so there the adapter reports itself unavailable; the tests drive it against a
test-only stand-in that loads the SavedModel with TensorFlow and speaks TF Serving's APIs.

Settings: `server.threads` (TensorFlow's intra- and inter-op threads), `server.workers` (sizes only the
REST thread pool: 4 per worker, at least 4); `server.options.tfserving`: binary, protocol, batching with its BatchingParameters max_batch_size, batch_timeout_micros,
num_batch_threads, max_enqueued_batches. `servingbench tune` searches threads, batching and, with it on,
max_batch_size, batch_timeout_micros and num_batch_threads (threads x batch threads within the host's
cores); not workers, which adds no model copy.
"""
from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np

from servingbench.adapters.base import (
    BATCH_SIZES,
    Adapter,
    Artifact,
    Availability,
    ClientSideProcessing,
    Host,
    Knob,
    core_knobs,
    powers_of_two_up_to,
)
from servingbench.adapters.http_metrics import get_text, prometheus_counters
from servingbench.exports.savedmodel import (
    INPUT,
    OUTPUT,
    SIGNATURE,
    export_savedmodel,
    tensorflow_missing,
    variable_axes,
)
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample

BINARY = "tensorflow_model_server"
DEFAULTS = {"binary": None, "protocol": "http",
            "batching": False, "max_batch_size": 8, "batch_timeout_micros": 1000, "num_batch_threads": 1,
            "max_enqueued_batches": 100}
PROTOCOLS = ("http", "grpc")
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
METRICS_PATH = "/monitoring/prometheus/metrics"
# TF Serving's Prometheus names, in servingbench's (see Adapter.scrape_metrics); latencies in microseconds.
METRICS = {":tensorflow:serving:request_count": "requests_total",
           ":tensorflow:serving:request_latency_sum": "server_us_total",
           ":tensorflow:serving:runtime_latency_sum": "inference_us_total"}
CONFIG_FILES = {"model_config": "models.config", "monitoring": "monitoring.config", "batching": "batching.config"}
BATCHING_PARAMETERS = ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches")
# TF Serving's MonitoringConfig and BatchingParameters, which tensorflow-serving-api does not ship (its only
# config module is model_server_config_pb2): declared with the package, names and field numbers of TF Serving's
# monitoring_config.proto and session_bundle_config.proto (BatchingParameters: the fields servingbench sets).
CONFIG_PROTOS = """
name: "servingbench/tfserving_configs.proto" package: "tensorflow.serving" syntax: "proto3"
dependency: "google/protobuf/wrappers.proto"
message_type { name: "PrometheusConfig"
  field { name: "enable" number: 1 label: LABEL_OPTIONAL type: TYPE_BOOL }
  field { name: "path" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING } }
message_type { name: "MonitoringConfig"
  field { name: "prometheus_config" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".tensorflow.serving.PrometheusConfig" } }
message_type { name: "BatchingParameters"
  field { name: "max_batch_size" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Int64Value" }
  field { name: "batch_timeout_micros" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Int64Value" }
  field { name: "max_enqueued_batches" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Int64Value" }
  field { name: "num_batch_threads" number: 4 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Int64Value" } }
"""
INSTALL_HINT = ("install TF Serving (Google's apt repository "
                "https://storage.googleapis.com/tensorflow-serving-apt, package tensorflow-model-server) and put "
                f"{BINARY} on PATH, or set server.options.tfserving.binary, or run its official image "
                "(tensorflow/serving) with --container docker|podman|apptainer")


class TFServingAdapter(Adapter):
    name = "tfserving"
    description = "TensorFlow Serving (SavedModel converted from the torch model; REST JSON or gRPC Predict)"

    option_defaults = DEFAULTS
    option_choices = {"protocol": PROTOCOLS}
    container_image = "tensorflow/serving:2.19.0"
    runs_servingbench_code = False  # it serves the SavedModel as it is

    def __init__(self, study):
        super().__init__(study)
        self._client = ClientSideProcessing()

    def knobs(self, host: Host) -> list[Knob]:
        return [*core_knobs(host, workers=False),
                self.option_knob("batching", "batching", (False, True)),
                self.option_knob("batch_size", "max_batch_size", BATCH_SIZES, needs="batching"),
                self.batch_delay_knob("batch_timeout_micros", "us", needs="batching"),
                self.option_knob("batch_threads", "num_batch_threads", powers_of_two_up_to(host.cores),
                                 uses_cores=True, needs="batching")]

    def _binary(self) -> str | None:
        return self.settings["binary"] or shutil.which(BINARY)

    def availability(self) -> Availability:
        missing = tensorflow_missing()
        if missing:
            return Availability(False, f"the SavedModel export needs TensorFlow: {missing}")
        if self.container:  # its runtime was found when the adapter was made
            return Availability(True, details={"container": str(self.container)})
        binary = self._binary()
        if binary is None:
            return Availability(False, f"{BINARY} not found on PATH (it has no pip package): {INSTALL_HINT}")
        if not Path(binary).exists():
            return Availability(False, f"{BINARY} not found at {binary}")
        return Availability(True, details={"server": binary})

    # -- packaging ----------------------------------------------------------------------------------------------

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        """models/<name>/1/saved_model.pb: TF Serving's base path layout (a version folder per model)."""
        base = workdir / "models"
        shutil.rmtree(base, ignore_errors=True)
        export_savedmodel(model, loaded, base / model.name / "1", variable_axes(model, loaded))
        self._client.keep(model.name, loaded)
        return Artifact(self.name, model.name, base, tuple(sorted(base.rglob("*"))))

    def server_files(self, artifact: Artifact, run_dir: Path) -> dict[str, Path]:
        """The model config, monitoring and (if batching) batching parameter files, in the protobuf text format
        tensorflow_model_server reads (a container binds the models at the same path)."""
        from google.protobuf import text_format

        messages = {"model_config": model_server_config(artifact.model, str(artifact.path / artifact.model)),
                    "monitoring": monitoring_config(METRICS_PATH)}
        if self.settings["batching"]:
            messages["batching"] = batching_parameters({key: self.settings[key] for key in BATCHING_PARAMETERS})
        config = run_dir / "tfserving"
        config.mkdir(parents=True, exist_ok=True)
        files = {key: config / CONFIG_FILES[key] for key in messages}
        for key, message in messages.items():
            files[key].write_text(text_format.MessageToString(message))
        return files

    # -- launching ----------------------------------------------------------------------------------------------

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        files = self.server_files(artifact, run_dir)
        threads = self.study.server.threads
        flags = [f"--port={ports.grpc}", f"--rest_api_port={ports.http}",
                 f"--model_config_file={files['model_config']}", f"--monitoring_config_file={files['monitoring']}",
                 f"--tensorflow_intra_op_parallelism={threads}", f"--tensorflow_inter_op_parallelism={threads}",
                 f"--rest_api_num_threads={max(4, self.study.server.workers * 4)}"]
        if "batching" in files:
            flags += ["--enable_batching", f"--batching_parameters_file={files['batching']}"]
        argv = [BINARY if self.container else self._binary(), *flags]  # in a container: the image's server
        http = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=http if self.settings["protocol"] == "http" else f"grpc://127.0.0.1:{ports.grpc}",
                          ready_url=f"{http}/v1/models/{artifact.model}", argv=tuple(argv), cwd=run_dir,
                          ready_body='"AVAILABLE"',
                          fatal_log_patterns=("Failed to start server", f"{{name: {artifact.model} version: 1}} failed"))

    # -- requests -----------------------------------------------------------------------------------------------

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        tensor, preprocess_ms = self._client.preprocess(model.name, sample)
        if self.settings["protocol"] == "grpc":
            return PreparedRequest(protocol="grpc", path=PREDICT_METHOD, body=encode_grpc_request(model.name, tensor),
                                   sample=sample.name, client_preprocess_ms=preprocess_ms)
        return PreparedRequest(path=f"/v1/models/{model.name}:predict", body=encode_rest_request(tensor),
                               headers={"Content-Type": "application/json"}, sample=sample.name,
                               client_preprocess_ms=preprocess_ms)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        array = decode_grpc_response(body) if self.settings["protocol"] == "grpc" else decode_rest_response(body)
        return self._client.postprocess(model.name, array)

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        return prometheus_counters(get_text(f"http://127.0.0.1:{ports.http}{METRICS_PATH}"), METRICS, {})


# -- TF Serving's config files (also read by the test-only stand-in) ----------------------------------------------

@functools.cache
def config_message_classes() -> tuple[type, type]:
    """(MonitoringConfig, BatchingParameters) built from CONFIG_PROTOS, in a pool of their own so that they never
    clash with a tensorflow-serving-api that ships them."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(text_format.Parse(CONFIG_PROTOS, descriptor_pb2.FileDescriptorProto()))
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
                 for name in ("MonitoringConfig", "BatchingParameters"))


def model_server_config(name: str, base_path: str):
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
    return config


def monitoring_config(metrics_path: str):
    monitoring_class, _ = config_message_classes()
    config = monitoring_class()
    config.prometheus_config.enable = True
    config.prometheus_config.path = metrics_path
    return config


def batching_parameters(values: dict[str, int]):
    _, batching_class = config_message_classes()
    parameters = batching_class()
    for key, value in values.items():
        getattr(parameters, key).value = value  # each an Int64Value: unset means TF Serving's default
    return parameters


# -- TF Serving's wire formats (also spoken by the test-only stand-in) ----------------------------------------------

def encode_rest_request(tensor: np.ndarray) -> bytes:
    """The row ("instances") format, one instance per batch item, as the study sent it."""
    return json.dumps({"signature_name": SIGNATURE, "instances": tensor.tolist()}).encode()


def decode_rest_response(body: bytes) -> np.ndarray:
    document = json.loads(body)
    if "error" in document:
        raise ValueError(document["error"])
    return np.asarray(document["predictions"], dtype=np.float32)


def tensor_proto(array: np.ndarray):
    """A float32 TensorProto holding `array` (raw little-endian content)."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=array.astype("<f4").tobytes(),
                                  tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                      dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]))


def proto_array(proto) -> np.ndarray:
    """A float32 TensorProto's values, from raw content or the repeated field."""
    shape = [d.size for d in proto.tensor_shape.dim]
    values = (np.frombuffer(proto.tensor_content, dtype="<f4") if proto.tensor_content
              else np.asarray(proto.float_val, dtype=np.float32))
    return values.reshape(shape)


def encode_grpc_request(model_name: str, tensor: np.ndarray) -> bytes:
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = SIGNATURE
    request.inputs[INPUT].CopyFrom(tensor_proto(tensor))
    request.output_filter.append(OUTPUT)
    return request.SerializeToString()


def decode_grpc_response(body: bytes) -> np.ndarray:
    from tensorflow_serving.apis import predict_pb2

    return proto_array(predict_pb2.PredictResponse.FromString(body).outputs[OUTPUT])
