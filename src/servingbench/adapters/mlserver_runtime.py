"""The `mlserver` adapter's custom MLServer runtime: the served model behind MLServer's V2 API.

model-settings.json names `servingbench.adapters.mlserver_runtime.ServedModelRuntime` as the
implementation and the served-model folder (served_model.py) as `parameters.uri`. MLServer loads it
in each of its parallel inference workers. A request carries samples' wire bytes as a BYTES input
(base64 in JSON, decoded by MLServer's codec for the input's content type); the answer is each task
output's JSON text as a BYTES output. With adaptive batching on, MLServer merges requests along the
first axis and splits the answer the same way, so one call may get several samples.
"""
from __future__ import annotations

import json

from mlserver import MLModel
from mlserver.codecs import Base64Codec, StringCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

from servingbench.adapters.kserve_v2 import ANSWER_OUTPUT
from servingbench.adapters.served_model import load_served_model, predict_batch


class ServedModelRuntime(MLModel):
    async def load(self) -> bool:
        self._loaded = load_served_model(self.settings.parameters.uri)
        return True

    def request_bodies(self, payload: InferenceRequest) -> list[bytes]:
        """The samples' wire bytes: the input decoded by the codec of its content type (base64)."""
        return self.decode(payload.inputs[0], default_codec=Base64Codec)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        try:
            outputs = predict_batch(self._loaded, self.request_bodies(payload))
        except Exception as exc:  # a bad input: MLServer answers InferenceError with HTTP 400
            raise InferenceError(f"{type(exc).__name__}: {exc}") from exc
        answers = [json.dumps(output) for output in outputs]
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[StringCodec.encode_output(ANSWER_OUTPUT, answers, use_bytes=False)])
