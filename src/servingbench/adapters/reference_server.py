"""The reference server: one model instance behind Python's threading HTTP server.

POST /predict  body = the sample's wire bytes  -> JSON task output
GET  /health   200 once the model is loaded
GET  /metrics  cumulative counters: requests_total, server_us_total, queue_us_total, inference_us_total

One model instance serves requests one at a time (a lock), like a framework with one worker;
the time spent waiting for the lock is the server-side queue time.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from servingbench.adapters.served_model import load_served_model, read_manifest


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {"requests_total": 0, "failures_total": 0, "server_us_total": 0, "queue_us_total": 0,
                       "inference_us_total": 0}

    def add(self, **deltas: int) -> None:
        with self.lock:
            for key, delta in deltas.items():
                self.values[key] += delta

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.values)


class ReferenceHTTPServer(ThreadingHTTPServer):
    # The default listen backlog of 5 resets connections when many clients connect at once
    # (LoadGen's Offline scenario opens 64): a real server's backlog is in the hundreds.
    request_queue_size = 1024


def make_handler(loaded, counters: Counters):
    model_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as load generators and frameworks use
        # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits
        # for the client's delayed ACK and every answer gains ~40 ms.
        disable_nagle_algorithm = True

        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path == "/health":
                self._reply(200, b'{"status": "ready"}')
            elif self.path == "/metrics":
                self._reply(200, json.dumps(counters.snapshot()).encode())
            else:
                self._reply(404, b'{"error": "not found"}')

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/predict":
                self._reply(404, b'{"error": "not found"}')
                return
            arrived = time.perf_counter_ns()
            with model_lock:
                started = time.perf_counter_ns()
                try:
                    output = loaded.predict(body)
                except Exception as exc:  # a bad input is the client's failure, not the server's end
                    counters.add(requests_total=1, failures_total=1)
                    self._reply(400, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
                    return
                finished = time.perf_counter_ns()
            counters.add(requests_total=1, server_us_total=(finished - arrived) // 1000,
                         queue_us_total=(started - arrived) // 1000, inference_us_total=(finished - started) // 1000)
            self._reply(200, json.dumps(output).encode())

        def log_message(self, *args) -> None:  # one line per request would dominate the log
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="servingbench reference server")
    parser.add_argument("--served-model", required=True, help="the folder served_model.write_served_model wrote")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    loaded = load_served_model(args.served_model)  # sets the manifest's torch thread count
    server = ReferenceHTTPServer(("127.0.0.1", args.port), make_handler(loaded, Counters()))
    server.daemon_threads = True
    print(f"reference server: {read_manifest(args.served_model).model.name} on http://127.0.0.1:{args.port}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
