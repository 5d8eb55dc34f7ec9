"""LitServe's server code: the served model as a LitAPI, run by a LitServer from this script.

`python -m servingbench.adapters.litserve_app --model-dir DIR --port P --workers N [...]`. LitServe
starts N inference worker processes (each runs `setup`, so each loads its own model) fed through
queues by as many uvicorn processes, all on one socket bound to 127.0.0.1.

POST /predict  body = the sample's raw bytes  -> JSON task output. LitServe reads a request body
               as JSON (or form data) unless `decode_request` annotates its parameter with another
               type, which LitServe hands to FastAPI as the endpoint's parameter type: a `bytes`
               body parameter, which FastAPI fills with the raw body for any non-JSON Content-Type.
GET  /health   200 once every inference worker has run `setup` (model loaded).

No `from __future__ import annotations` here: LitServe copies decode_request's annotation into its
endpoint's signature, and FastAPI must see the type itself, not a string it would resolve elsewhere.
"""
import argparse
from typing import Annotated, Any

import litserve as ls
from fastapi import Body, HTTPException

from servingbench.adapters.served_model import load_served_model, predict_batch


class ServedModelAPI(ls.LitAPI):
    def __init__(self, model_dir: str, max_batch_size: int, batch_timeout_s: float):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout_s)
        self.model_dir = model_dir

    def setup(self, device: str) -> None:
        # the device LitServe hands each worker ("cuda:0" with accelerator cuda; "cpu" is the manifest's already)
        self.loaded = load_served_model(self.model_dir, device if device.startswith("cuda") else None)

    def decode_request(self, request: Annotated[bytes, Body(media_type="application/octet-stream")]) -> bytes:
        return request

    def predict(self, x: Any) -> Any:
        bodies = x if isinstance(x, list) else [x]  # with batching on, LitServe's default batch(): a list
        try:
            outputs = predict_batch(self.loaded, bodies)
        except Exception as exc:  # a bad input is the client's failure (HTTP 400); with batching on, LitServe
            raise HTTPException(400, f"{type(exc).__name__}: {exc}") from exc  # fails its whole batch
        return outputs if isinstance(x, list) else outputs[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument("--batch-timeout-s", type=float, default=0.0)
    parser.add_argument("--timeout-s", type=float, default=30)
    parser.add_argument("--accelerator", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    api = ServedModelAPI(args.model_dir, args.max_batch_size, args.batch_timeout_s)
    server = ls.LitServer(api, accelerator=args.accelerator, devices=1, workers_per_device=args.workers,
                          timeout=args.timeout_s)
    # LitServe's defaults are 0.0.0.0 and a client.py written into the working directory: neither here.
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)


if __name__ == "__main__":
    main()
