"""BentoML's server code: the served model as a new-style BentoML Service (`@bentoml.service` class).

`bentoml serve servingbench.adapters.bentoml_service:ServedModel --host 127.0.0.1 --port P --arg-file F`
(`:BatchingFront` with batching). F holds the *bento arguments* (`bentoml.use_arguments`, BentoML's way
to parametrise a service from the command line): `model_dir`, the served-model folder (served_model.py),
and the `@bentoml.service(...)` / `@bentoml.api(...)` settings (workers, traffic, batching). BentoML hands
them to every worker process on its command line; each worker builds its own instance, so each loads
its own model.

POST /predict  body = the sample's raw bytes  -> JSON task output. The API's one positional-only
               `bytes` parameter is BentoML's "root input": the body as sent, whatever its Content-Type
               (image/jpeg, audio/wav, text/plain), so BentoML gets the same bytes as every framework.
GET  /readyz   200 once a worker has built its instance (model loaded): a BentoML worker accepts
               nothing before its ASGI start-up, which builds the instance, has ended.

Adaptive batching (argument `batching`: max_batch_size, max_latency_ms) takes BentoML's documented
pattern for single inputs: a batchable API accepts only one list of inputs per request, so the
client-facing `BatchingFront` (one worker) passes each body on to `BatchedModel`'s batchable API
(`bentoml.depends`, its own worker processes), whose dispatcher gathers concurrent calls into batches.
"""
from __future__ import annotations

import ctypes
import signal
from typing import Any

import bentoml
from bentoml.exceptions import BadInput
from pydantic import BaseModel

from servingbench.adapters.served_model import load_served_model, predict_batch


class ServiceArguments(BaseModel):
    model_dir: str
    service: dict[str, Any] = {}  # @bentoml.service keywords of the client-facing service
    model_service: dict[str, Any] = {}  # ... and of BatchedModel, with batching on
    batching: dict[str, int] = {}  # @bentoml.api keywords of BatchedModel's API: max_batch_size, max_latency_ms


ARGUMENTS = bentoml.use_arguments(ServiceArguments)
PR_SET_PDEATHSIG = 1


def die_with_arbiter() -> None:
    """Called in every worker. Circus, BentoML's process manager, starts each worker in a session of its
    own and waits up to a day for it to stop, and a worker's graceful stop can hang (seen with the
    batching front); servingbench SIGKILLs the arbiter after a grace period. So each worker asks the
    kernel to kill it when the arbiter dies, and none outlives it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        pass


def answer(loaded: Any, body: bytes) -> dict[str, Any]:
    """{"output": the task output} or {"error": why the input was bad}."""
    try:
        return {"output": loaded.predict(body)}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def reply(result: dict[str, Any]) -> dict[str, Any]:
    """The task output of an `answer`, or HTTP 400: a bad input is the client's failure, not the server's."""
    if "error" in result:
        raise BadInput(result["error"])
    return result["output"]


@bentoml.service(**ARGUMENTS.service)
class ServedModel:
    def __init__(self) -> None:
        die_with_arbiter()
        self.loaded = load_served_model(ARGUMENTS.model_dir)

    # A sync API: BentoML runs it in its thread pool, `threads` calls at once per worker (BentoML's default 1).
    @bentoml.api
    def predict(self, body: bytes, /) -> dict[str, Any]:
        return reply(answer(self.loaded, body))


@bentoml.service(**ARGUMENTS.model_service)
class BatchedModel:
    def __init__(self) -> None:
        die_with_arbiter()
        self.loaded = load_served_model(ARGUMENTS.model_dir)

    @bentoml.api(batchable=True, **ARGUMENTS.batching)
    def predict_batch(self, bodies: list[bytes]) -> list[dict[str, Any]]:
        try:
            return [{"output": output} for output in predict_batch(self.loaded, bodies)]
        except Exception:  # a bad input fails the whole batch: each body on its own, so only its request fails
            return [answer(self.loaded, body) for body in bodies]


@bentoml.service(**ARGUMENTS.service)
class BatchingFront:
    model = bentoml.depends(BatchedModel)

    def __init__(self) -> None:
        die_with_arbiter()

    @bentoml.api(route="/predict")
    async def predict(self, body: bytes, /) -> dict[str, Any]:
        [batched_answer] = await self.model.to_async.predict_batch([body])
        return reply(batched_answer)
