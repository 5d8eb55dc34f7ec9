"""TensorFlow Serving: a SavedModel per model (converted from the shared torch network, see
exports/savedmodel.py), `tensorflow_model_server` with a model config file, REST or gRPC.

Two pipelines (study `pipeline`). end_to_end (the default): the SavedModel's signature takes the raw sample (JPEG
or WAV bytes, a tf.string: REST `{"instances": [{"b64": ...}]}`, gRPC a string tensor) and runs the model's
preprocessing, the network and its postprocessing in TensorFlow ops (exports/savedmodel_end_to_end.py), answering
the task output; models whose processing TensorFlow ops can't express are 'unsupported' there. network_only (the
study's set-up): the client preprocesses and TF Serving runs only the network. Requests are TF Serving's REST JSON
(`{"signature_name": ..., "instances": [...]}`) or a gRPC `PredictionService/Predict` message. The server is `tensorflow_model_server` on PATH (or
`server.options.tfserving.binary`), or the `tensorflow/serving` image (`container_image`) run by docker,
podman or apptainer when the study sets `server.container`. Neither exists on the build machine (no pip or
apt package, no container engine), so there the adapter reports itself unavailable; the tests drive it against a
test-only stand-in that loads the SavedModel with TensorFlow and speaks TF Serving's APIs.

Settings: `server.threads` (TensorFlow's intra- and inter-op threads), `server.workers` (sizes only the
REST thread pool: 4 per worker, at least 4); `server.options.tfserving`: binary, protocol, batching with its BatchingParameters max_batch_size, batch_timeout_micros,
num_batch_threads, max_enqueued_batches; gpu_memory_fraction (on a GPU, `--per_process_gpu_memory_fraction`; the
`-gpu` image in a container). `servingbench tune` searches threads, batching and, with it on,
max_batch_size, batch_timeout_micros and num_batch_threads (threads x batch threads within the host's
cores); not workers, which adds no model copy.
"""
from __future__ import annotations

import base64
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
from servingbench.exports.savedmodel_end_to_end import (
    CLASSIFICATION_OUTPUTS,
    SAMPLE_INPUT,
    SPEECH_OUTPUTS,
    TOKEN_PAD,
    export_end_to_end_savedmodel,
)
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample

BINARY = "tensorflow_model_server"
DEFAULTS = {"binary": None, "protocol": "http",
            "batching": False, "max_batch_size": 8, "batch_timeout_micros": 1000, "num_batch_threads": 1,
            "max_enqueued_batches": 100, "gpu_memory_fraction": 0.5}
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
# end_to_end: the tasks whose processing exports/savedmodel_end_to_end.py writes in TensorFlow ops, and why not others.
END_TO_END_TASKS = ("image-classification", "speech-recognition")
NOT_IN_TF_OPS = {"summarization": "its BPE tokenisation, generate() loop and detokenisation",
                 "text-classification": "its tokenisation", "feature-extraction": "its tokenisation"}


class TFServingAdapter(Adapter):
    name = "tfserving"
    description = "TensorFlow Serving (SavedModel converted from the torch model; REST JSON or gRPC Predict)"

    option_defaults = DEFAULTS
    option_choices = {"protocol": PROTOCOLS}
    container_image = "tensorflow/serving:2.19.0"
    container_image_gpu = "tensorflow/serving:2.19.0-gpu"
    runs_servingbench_code = False  # it serves the SavedModel as it is
    pipelines = ("end_to_end", "network_only")

    def __init__(self, study, pipeline=None):
        super().__init__(study, pipeline)
        self.client_processing = ClientSideProcessing()

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

    def unsupported_reason(self, model: ModelSpec) -> str | None:
        """end_to_end: the tasks TensorFlow ops can't process, and your own models (their processing is yours);
        the rest (including a registered model whose processor has no TF-ops version) is decided in package()."""
        if self.pipeline != "end_to_end":
            return None
        entry = model.entry
        if entry is not None and entry.kind != "registered":
            why = f"{model.name} is your own model ({entry.kind}): its processing"
        elif model.task not in END_TO_END_TASKS:
            why = f"{model.name}'s {model.task} ({NOT_IN_TF_OPS.get(model.task, 'its processing')})"
        else:
            return None
        return f"TF Serving end_to_end: {why} can't be expressed in TensorFlow ops; use pipeline network_only"

    # -- packaging ----------------------------------------------------------------------------------------------

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        """models/<name>/1/saved_model.pb: TF Serving's base path layout (a version folder per model). end_to_end:
        the signature takes the raw sample and answers the task output; network_only: the network alone."""
        base = workdir / "models"
        shutil.rmtree(base, ignore_errors=True)
        if self.pipeline == "end_to_end":
            export_end_to_end_savedmodel(model, loaded, base / model.name / "1")
        else:
            export_savedmodel(model, loaded, base / model.name / "1", variable_axes(model, loaded))
        self.client_processing.keep(model.name, loaded)
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
        if self.placement.gpu:  # TensorFlow takes nearly all of a GPU's memory unless told; the study's in-process
            # model shares it
            flags.append(f"--per_process_gpu_memory_fraction={self.settings['gpu_memory_fraction']}")
        argv = [BINARY if self.container else self._binary(), *flags]  # in a container: the image's server
        http = f"http://127.0.0.1:{ports.http}"
        return LaunchSpec(base_url=http if self.settings["protocol"] == "http" else f"grpc://127.0.0.1:{ports.grpc}",
                          ready_url=f"{http}/v1/models/{artifact.model}", argv=tuple(argv), cwd=run_dir,
                          ready_body='"AVAILABLE"',
                          fatal_log_patterns=("Failed to start server", f"{{name: {artifact.model} version: 1}} failed"))

    # -- requests -----------------------------------------------------------------------------------------------

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        if self.pipeline == "end_to_end":  # the sample as it is, in a string tensor
            if self.settings["protocol"] == "grpc":
                return PreparedRequest(protocol="grpc", path=PREDICT_METHOD, sample=sample.name,
                                       body=encode_grpc_sample_request(model.name, sample.data))
            return PreparedRequest(path=f"/v1/models/{model.name}:predict", body=encode_rest_sample_request(sample.data),
                                   headers={"Content-Type": "application/json"}, sample=sample.name)
        tensor, preprocess_ms = self.client_processing.preprocess(model.name, sample)
        if self.settings["protocol"] == "grpc":
            return PreparedRequest(protocol="grpc", path=PREDICT_METHOD, body=encode_grpc_request(model.name, tensor),
                                   sample=sample.name, client_preprocess_ms=preprocess_ms)
        return PreparedRequest(path=f"/v1/models/{model.name}:predict", body=encode_rest_request(tensor),
                               headers={"Content-Type": "application/json"}, sample=sample.name,
                               client_preprocess_ms=preprocess_ms)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        if self.pipeline == "end_to_end":
            grpc = self.settings["protocol"] == "grpc"
            return task_output(decode_grpc_outputs(body) if grpc else decode_rest_outputs(body))
        array = decode_grpc_response(body) if self.settings["protocol"] == "grpc" else decode_rest_response(body)
        return self.client_processing.postprocess(model.name, array)

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


# -- end_to_end: raw samples in, the signature's named outputs back ---------------------------------------------------

def encode_rest_sample_request(data: bytes) -> bytes:
    """One instance, the sample's bytes base64-encoded as TF Serving's REST API takes binary strings."""
    return json.dumps({"signature_name": SIGNATURE,
                       "instances": [{"b64": base64.b64encode(data).decode("ascii")}]}).encode()


def decode_rest_outputs(body: bytes) -> dict[str, object]:
    """The first instance's outputs by name (row format: a prediction is an object of the named outputs)."""
    document = json.loads(body)
    if "error" in document:
        raise ValueError(document["error"])
    (prediction,) = document["predictions"]
    return prediction


def string_tensor_proto(values: list[bytes]):
    """A 1-D DT_STRING TensorProto."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=values, tensor_shape=tensor_shape_pb2.
                                  TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]))


def any_proto_array(proto) -> np.ndarray:
    """A TensorProto of floats, ints or strings as a numpy array (bytes objects for strings)."""
    from tensorflow.core.framework import types_pb2

    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.dtype == types_pb2.DT_STRING:
        return np.array(list(proto.string_val), dtype=object).reshape(shape)
    if proto.dtype == types_pb2.DT_FLOAT:
        return proto_array(proto)
    numpy_type = {types_pb2.DT_INT32: "<i4", types_pb2.DT_INT64: "<i8", types_pb2.DT_DOUBLE: "<f8"}[proto.dtype]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=numpy_type).reshape(shape)
    field = {types_pb2.DT_INT32: proto.int_val, types_pb2.DT_INT64: proto.int64_val,
             types_pb2.DT_DOUBLE: proto.double_val}[proto.dtype]
    return np.asarray(field, dtype=numpy_type).reshape(shape)


def array_tensor_proto(array: np.ndarray):
    """Any numpy array (float32, int32/64, bytes objects) as a TensorProto, as TF Serving answers."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])
    if array.dtype == object or array.dtype.kind == "S":
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape,
                                      string_val=[bytes(v) for v in array.reshape(-1)])
    kinds = {"float32": (types_pb2.DT_FLOAT, "<f4"), "int32": (types_pb2.DT_INT32, "<i4"),
             "int64": (types_pb2.DT_INT64, "<i8"), "float64": (types_pb2.DT_DOUBLE, "<f8")}
    dtype, wire = kinds[array.dtype.name]
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=array.astype(wire).tobytes())


def encode_grpc_sample_request(model_name: str, data: bytes) -> bytes:
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = SIGNATURE
    request.inputs[SAMPLE_INPUT].CopyFrom(string_tensor_proto([data]))
    return request.SerializeToString()


def decode_grpc_outputs(body: bytes) -> dict[str, object]:
    """The first batch item's outputs by name."""
    from tensorflow_serving.apis import predict_pb2

    outputs = predict_pb2.PredictResponse.FromString(body).outputs
    return {name: any_proto_array(proto)[0] for name, proto in outputs.items()}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def task_output(outputs: dict[str, object]) -> Output:
    """The end_to_end signature's outputs for one sample (REST JSON or gRPC arrays) as the task Output."""
    if set(CLASSIFICATION_OUTPUTS) <= set(outputs):
        top = zip(np.asarray(outputs["top_ids"]).tolist(), list(outputs["top_labels"]),
                  np.asarray(outputs["top_probabilities"], dtype=np.float64).tolist())
        return {"top5": [[int(i), _text(label), float(p)] for i, label, p in top],
                "logits": np.asarray(outputs["logits"], dtype=np.float64).tolist()}
    if set(SPEECH_OUTPUTS) <= set(outputs):
        return {"text": _text(outputs["text"]),
                "token_ids": [int(t) for t in np.asarray(outputs["token_ids"]).tolist() if t != TOKEN_PAD]}
    raise ValueError(f"unexpected outputs {sorted(outputs)}")
