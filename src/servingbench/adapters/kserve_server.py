"""The `kserve` adapter's server: the served model as a `kserve.Model`, run by `kserve.ModelServer`.

`python -m servingbench.adapters.kserve_server --model_dir DIR --model_name NAME --http_port P
--workers N --enable_grpc false`: KServe's own argument parser reads its ModelServer flags (as in
KServe's custom model examples); this module adds --model_dir, the served-model folder.

POST /v1/models/NAME:predict  {"instances": [{"b64": sample bytes}]} -> {"predictions": [task output]}
POST /v2/models/NAME/infer    kserve_v2.SAMPLE_INPUT, BYTES base64   -> ANSWER_OUTPUT, the output's JSON
GET  /v2/models/NAME/ready    200 once the model is loaded (it loads before the server starts)

KServe 0.21 binds its HTTP server to 0.0.0.0 with no flag or environment variable to change it;
`serve_http_on_loopback` sets the host on the uvicorn config KServe builds, before it binds.
"""
from __future__ import annotations

import argparse
import base64
import json

from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.errors import InvalidInput
from kserve.protocol.rest.server import RESTServer
from kserve.utils.utils import generate_uuid

from servingbench.adapters.kserve_v2 import ANSWER_OUTPUT
from servingbench.adapters.served_model import load_served_model, predict_batch

LOOPBACK = "127.0.0.1"


class ServedModel(Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self.load()

    def load(self) -> bool:
        self.loaded = load_served_model(self.model_dir)
        self.ready = True
        return self.ready

    # With workers > 1 KServe pickles the model into each worker process: each loads its own from the
    # folder instead (a TorchScript network can't be pickled).
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "loaded"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.load()

    def predict(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict | InferResponse:
        # Synchronous, as in KServe's examples: KServe runs it on its event loop, one request at a time per worker.
        try:
            outputs = predict_batch(self.loaded, request_bodies(payload))
        except Exception as exc:  # a bad input: KServe answers InvalidInput with HTTP 400
            raise InvalidInput(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(payload, InferRequest):
            return {"predictions": outputs}
        answers = InferOutput(ANSWER_OUTPUT, [len(outputs)], "BYTES", [json.dumps(output) for output in outputs])
        return InferResponse(payload.id or generate_uuid(), self.name, [answers])


def request_bodies(payload: dict | InferRequest) -> list[bytes]:
    """The samples' wire bytes in a request as KServe decoded it: V2, base64 BYTES elements; V1, b64 instances."""
    if isinstance(payload, InferRequest):
        return [base64.b64decode(item, validate=True) for item in payload.inputs[0].data]
    return [base64.b64decode(instance["b64"], validate=True) for instance in payload["instances"]]


def serve_http_on_loopback() -> None:
    """KServe's RESTServer.__init__ builds `uvicorn.Config(host="0.0.0.0", ...)` (kserve/protocol/rest/server.py);
    uvicorn reads the config's host only when it binds, so set it right after KServe has built it."""
    build = RESTServer.__init__

    def build_on_loopback(self, *args, **kwargs) -> None:
        build(self, *args, **kwargs)
        self.config.host = LOOPBACK

    RESTServer.__init__ = build_on_loopback


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", required=True)
    args, _ = parser.parse_known_args()
    serve_http_on_loopback()
    ModelServer().start([ServedModel(args.model_name, args.model_dir)])  # its flags come from the command line


if __name__ == "__main__":
    main()
