"""A test-only STAND-IN for TensorFlow Serving: never offered as a framework.

TF Serving's binary can't be installed on the build machine, so tests point the `tfserving`
adapter's `binary` option at this: it takes the `tensorflow_model_server` flags the adapter
generates, loads each configured model's newest SavedModel version with TensorFlow, and answers
TF Serving's REST API (`GET /v1/models/<name>`, `POST /v1/models/<name>:predict` with "instances"
or "inputs"; string inputs as TF Serving takes them, `{"b64": ...}` decoded; several named outputs answered
per instance in the row format, strings as UTF-8 text), its gRPC `PredictionService/Predict` (float, integer
and string tensors), and a Prometheus page with TF Serving's counter
names. It checks the adapter's encoders, decoders and launch arguments, not TF Serving's speed.
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from servingbench.adapters.tfserving import METRICS_PATH, config_message_classes


class StandInHTTPServer(ThreadingHTTPServer):
    request_queue_size = 1024  # load tests open many connections at once


def read_model_config(path: Path) -> dict[str, Path]:
    """name -> base path, from the ModelServerConfig text file (text_format.Parse fails as TF Serving would)."""
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    return {model.name: Path(model.base_path) for model in config.model_config_list.config}


def read_metrics_path(path: Path | None) -> str:
    """Where the Prometheus page is, from the MonitoringConfig text file (TF Serving's default without one)."""
    if path is None:
        return METRICS_PATH
    monitoring_class, _ = config_message_classes()
    return text_format.Parse(path.read_text(), monitoring_class()).prometheus_config.path or METRICS_PATH


def read_batching_parameters(path: Path | None) -> str:
    """The BatchingParameters text file, parsed as TF Serving would (batching itself is not emulated)."""
    if path is None:
        return "none"
    _, batching_class = config_message_classes()
    return text_format.MessageToString(text_format.Parse(path.read_text(), batching_class()), as_one_line=True)


def rest_values(value):
    """A JSON input value as TF Serving reads it: `{"b64": "..."}` is binary string content, lists recurse."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [rest_values(v) for v in value]
    return value.encode() if isinstance(value, str) else value


def rest_input(rows, dtype) -> np.ndarray:
    """The request's rows as the signature's input dtype."""
    if dtype.name == "string":
        values = rest_values(rows)
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    return np.asarray(rows, dtype.as_numpy_dtype)


def json_values(array: np.ndarray):
    """An output as TF Serving's REST API writes it: numbers as numbers, strings as UTF-8 text."""
    if array.dtype == object:
        return [json_values(v) if isinstance(v, np.ndarray) else v.decode() for v in array] if array.ndim else \
            array.item().decode()
    return array.tolist()


class Models:
    def __init__(self, config: dict[str, Path], threads: int):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.tf = tf
        self.versions: dict[str, int] = {}
        self.functions = {}
        for name, base in config.items():
            version = max(int(p.name) for p in base.iterdir() if p.name.isdigit())
            self.functions[name] = tf.saved_model.load(str(base / str(version))).signatures
            self.versions[name] = version
        self.lock = threading.Lock()
        self.requests = 0
        self.latency_us = 0

    def predict(self, name: str, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter_ns()
        function = self.functions[name][signature or "serving_default"]
        outputs = {key: value.numpy() for key, value in
                   function(**{k: self.tf.constant(v) for k, v in inputs.items()}).items()}
        with self.lock:
            self.requests += 1
            self.latency_us += (time.perf_counter_ns() - start) // 1000
        return outputs

    def prometheus(self) -> str:
        with self.lock:
            return ("# TYPE :tensorflow:serving:request_count counter\n"
                    f':tensorflow:serving:request_count{{model_name="all",status="OK"}} {self.requests}\n'
                    "# TYPE :tensorflow:serving:request_latency histogram\n"
                    f':tensorflow:serving:request_latency_sum{{API="predict",entrypoint="REST"}} {self.latency_us}\n')


def make_handler(models: Models, metrics_path: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:
            pass

        def _reply(self, status: int, document: dict | str) -> None:
            body = (document if isinstance(document, str) else json.dumps(document)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == metrics_path:
                return self._reply(200, models.prometheus())
            match = re.fullmatch(r"/v1/models/([^/:]+)", self.path)
            if match and match.group(1) in models.versions:
                return self._reply(200, {"model_version_status": [
                    {"version": str(models.versions[match.group(1)]), "state": "AVAILABLE",
                     "status": {"error_code": "OK", "error_message": ""}}]})
            self._reply(404, {"error": f"Servable not found for request: {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            match = re.fullmatch(r"/v1/models/([^/:]+):predict", self.path)
            if not match or match.group(1) not in models.versions:
                return self._reply(404, {"error": f"Servable not found for request: {self.path}"})
            try:
                document = json.loads(body)
                signature = document.get("signature_name", "serving_default")
                function = models.functions[match.group(1)][signature]
                ((input_name, spec),) = function.structured_input_signature[1].items()
                rows = document["instances"] if "instances" in document else document["inputs"]
                outputs = models.predict(match.group(1), signature, {input_name: rest_input(rows, spec.dtype)})
            except Exception as exc:  # TF Serving answers a bad request with 400 and an error text
                return self._reply(400, {"error": f"{type(exc).__name__}: {exc}"})
            if "instances" not in document:  # the columnar format: each output whole, by name if several
                values = {name: json_values(array) for name, array in outputs.items()}
                return self._reply(200, {"outputs": next(iter(values.values())) if len(values) == 1 else values})
            if len(outputs) == 1:  # the row format: a list of values, or of objects of the named outputs
                (output,) = outputs.values()
                return self._reply(200, {"predictions": json_values(output)})
            columns = {name: json_values(array) for name, array in outputs.items()}
            rows = [{name: column[i] for name, column in columns.items()} for i in range(len(next(iter(columns.values()))))]
            self._reply(200, {"predictions": rows})

    return Handler


def grpc_server(models: Models, port: int):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from servingbench.adapters.tfserving import any_proto_array, array_tensor_proto

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 - the service's method name
            inputs = {name: any_proto_array(proto) for name, proto in request.inputs.items()}
            if request.model_spec.name not in models.versions:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}")
            outputs = models.predict(request.model_spec.name, request.model_spec.signature_name, inputs)
            response = predict_pb2.PredictResponse()
            for name, array in outputs.items():
                if request.output_filter and name not in request.output_filter:
                    continue
                response.outputs[name].CopyFrom(array_tensor_proto(array))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    return server


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="test-only stand-in for tensorflow_model_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rest_api_port", type=int, required=True)
    parser.add_argument("--model_config_file", type=Path, required=True)
    parser.add_argument("--monitoring_config_file", type=Path)
    parser.add_argument("--batching_parameters_file", type=Path)
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=1)
    args, ignored = parser.parse_known_args(argv)  # batching and thread flags: accepted, not emulated
    print(f"stand-in for TF Serving; flags accepted but not emulated: {' '.join(ignored)}; batching parameters: "
          f"{read_batching_parameters(args.batching_parameters_file)}", flush=True)
    metrics_path = read_metrics_path(args.monitoring_config_file)
    models = Models(read_model_config(args.model_config_file), args.tensorflow_intra_op_parallelism)
    grpc = grpc_server(models, args.port)
    grpc.start()
    http = StandInHTTPServer(("127.0.0.1", args.rest_api_port), make_handler(models, metrics_path))
    print(f"serving {', '.join(models.versions)} on REST {args.rest_api_port}, gRPC {args.port}", flush=True)
    try:
        http.serve_forever()
    finally:
        grpc.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
