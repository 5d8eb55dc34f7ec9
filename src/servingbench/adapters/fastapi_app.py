"""The `fastapi` baseline's server: the model behind FastAPI, run by uvicorn, as many teams ship it.

`uvicorn servingbench.adapters.fastapi_app:app --host 127.0.0.1 --port P --workers N`, configured
through the environment: SERVINGBENCH_MODEL_DIR, the served-model folder (served_model.py). Each
uvicorn worker process imports this module and loads its own model.

POST /predict  body = the sample's wire bytes  -> JSON task output
GET  /health   200 once this worker's model is loaded (uvicorn accepts nothing before startup ends)
"""
from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from servingbench.adapters.served_model import load_served_model


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.loaded = load_served_model(os.environ["SERVINGBENCH_MODEL_DIR"])
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/predict")
async def predict(request: Request) -> Response:
    body = await request.body()
    try:
        # The model call blocks: off the event loop, in Starlette's thread pool, as a DIY service would.
        output = await run_in_threadpool(request.app.state.loaded.predict, body)
    except Exception as exc:  # a bad input is the client's failure, not the server's end
        return Response(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), status_code=400,
                        media_type="application/json")
    return Response(json.dumps(output), media_type="application/json")
