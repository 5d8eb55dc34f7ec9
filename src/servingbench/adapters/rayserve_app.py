"""The `rayserve` server: a private single-node Ray with Serve, serving the served-model folder in N replicas.

`python -m servingbench.adapters.rayserve_app --model-dir D --port P --metrics-port M --temp-dir T ...`
(the environment comes from adapters/rayserve.py). The process the launcher starts is a supervisor
(see `supervise`); it forks the Ray driver into a session of its own, which starts a new Ray bound to
127.0.0.1 (never one already running on this host), Serve's HTTP proxy on 127.0.0.1:P and the
`ServedModel` deployment.

The same deployment is Serve's to run from a Serve config file (`serve run serve_config.yaml`), through the
application builder `app` (see RayServeAdapter.write_config).

POST /predict  body = the sample's wire bytes  -> JSON task output (400 with the error for a bad input)
GET  /health   {"status": <the application's Serve status>}, from a replica (so never before one has
               loaded the model); "RUNNING" once every replica has.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import psutil
import ray
from ray import serve
from ray.serve import Application
from starlette.requests import Request
from starlette.responses import Response

from servingbench.adapters.rayserve import APP_NAME
from servingbench.adapters.served_model import load_served_model, predict_batch

# Ray's smallest allowed object store (75 MiB and a bit): requests and answers are small, and it sits in /dev/shm.
OBJECT_STORE_BYTES = 80 * 2**20
# How often every Ray process pushes its metrics to the metrics agent (Ray's default: 10 s; Ray exports at
# most once a second whatever is set). Short, so a trial's requests reach the Prometheus page soon after.
METRICS_REPORT_INTERVAL_MS = 1000
# After SIGTERM: how long Serve and Ray get to shut down in order before what is left of them is killed
# (the launcher's own grace period is 10 s).
SHUTDOWN_S = 7.0
SUPERVISOR_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


def predict_each(loaded, bodies: list[bytes]) -> list[dict | Exception]:
    """One output per body, or the exception it raised: a bad body fails only its own request."""
    try:
        outputs: list[dict | Exception] = [*predict_batch(loaded, bodies)]
    except Exception as exc:  # a bad input is the client's failure, not the replica's end
        if len(bodies) == 1:
            return [exc]
        return [predict_each(loaded, [body])[0] for body in bodies]
    return outputs


def json_response(content: dict, status_code: int = 200) -> Response:
    return Response(json.dumps(content), status_code=status_code, media_type="application/json")


def answer(result: dict | Exception) -> Response:
    if isinstance(result, Exception):
        return json_response({"error": f"{type(result).__name__}: {result}"}, 400)
    return json_response(result)


def keep_internal_grpc_on_loopback() -> None:
    """Serve 2.60 starts an inter-deployment gRPC server in every replica on "[::]:0", every interface, with
    no setting to change it (ReplicaBase._on_initialized in serve/_private/replica.py; only used when
    RAY_SERVE_USE_GRPC_BY_DEFAULT=1). Called in the replica before that: the server binds to 127.0.0.1."""
    from ray.serve._private import replica

    bind = replica.add_port_to_grpc_server
    replica.add_port_to_grpc_server = lambda server, address: bind(server, address.replace("[::]", "127.0.0.1"))


@serve.deployment
class ServedModel:
    """One replica: the model loaded in the constructor (Serve routes nothing to it before that ends)."""

    def __init__(self, model_dir: str, max_batch_size: int, batch_wait_timeout_s: float):
        keep_internal_grpc_on_loopback()
        self.loaded = load_served_model(model_dir)
        self.batching = max_batch_size > 1
        self.predict_batched.set_max_batch_size(max_batch_size)
        self.predict_batched.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch
    async def predict_batched(self, bodies: list[bytes]) -> list[dict | Exception]:
        return await asyncio.to_thread(predict_each, self.loaded, bodies)

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET":
            status = await asyncio.to_thread(serve.status)
            return json_response({"status": status.applications[APP_NAME].status})
        body = await request.body()
        if self.batching:
            return answer(await self.predict_batched(body))
        # The model blocks: in a thread, so that the replica's event loop keeps taking requests meanwhile.
        return answer((await asyncio.to_thread(predict_each, self.loaded, [body]))[0])


def app(args: dict[str, Any]) -> Application:
    """Serve's application builder for a Serve config file (`import_path: servingbench.adapters.rayserve_app:app`,
    `args`: model_dir, max_batch_size, batch_wait_timeout_s); replicas and the rest are in its `deployments`."""
    return ServedModel.bind(args["model_dir"], int(args["max_batch_size"]), float(args["batch_wait_timeout_s"]))


def start(args: argparse.Namespace) -> None:
    """A new Ray on 127.0.0.1 (address="local": never one already running here), then Serve and the app."""
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=os.cpu_count(),
             object_store_memory=OBJECT_STORE_BYTES, _temp_dir=args.temp_dir, _metrics_export_port=args.metrics_port,
             _system_config={"metrics_report_interval_ms": METRICS_REPORT_INTERVAL_MS})
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    # Replicas reserve no logical CPU: server.workers replicas run whatever the core count, as in every other
    # framework (Ray's default of 1 CPU each would leave the replicas beyond it unscheduled for ever).
    deployment = ServedModel.options(num_replicas=args.replicas, max_ongoing_requests=args.max_ongoing_requests,
                                     ray_actor_options={"num_cpus": 0, "num_gpus": args.gpus_per_replica})
    serve.run(deployment.bind(args.model_dir, args.max_batch_size, args.batch_wait_timeout_s),
              name=APP_NAME, route_prefix="/")


def drive(args: argparse.Namespace) -> None:
    """The Ray driver: start everything, serve until SIGTERM, then shut Serve down and Ray after it."""
    start(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # after ray.init, which installs its own
    stop.wait()
    serve.shutdown()
    ray.shutdown()


def shut_down_with_parent() -> None:
    """SIGTERM when the supervisor dies, even by SIGKILL: the driver then shuts Serve and Ray down in order. (Not
    SIGKILL: Ray would follow a killed driver, gcs_server and raylet at once by their own fate sharing, but its
    agents, finding the raylet gone, wait a minute on the dead GCS to report it before they exit.)"""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def session_processes(session: int) -> list[psutil.Process]:
    """The live processes of a session (Ray's workers lead process groups of their own, but stay in it)."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (OSError, psutil.Error):  # ended meanwhile
            pass
    return found


def supervise(driver: int) -> int:
    """The process the launcher started and signals, with its whole process group. Ray is not in that group:
    the driver leads a session of its own, because gcs_server and the raylet, signalled along with the
    driver, would go before Serve could shut down, and Ray's workers (Serve's controller, proxy, replicas)
    lead process groups of their own. So SIGTERM goes to the driver alone, and what is left of its session
    after SHUTDOWN_S is killed. Sleeps in sigwait meanwhile: no polling while the server is measured."""
    received = signal.sigwait(SUPERVISOR_SIGNALS)
    if received != signal.SIGCHLD:
        os.kill(driver, signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_S
    try:
        code = psutil.Process(driver).wait(timeout=SHUTDOWN_S)
    except psutil.TimeoutExpired:
        code = None
    while (left := session_processes(driver)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in left:
        process.kill()
    psutil.wait_procs(left, timeout=5)
    if received != signal.SIGCHLD or code is None:
        return 0
    return code if code >= 0 else 128 - code  # the driver ended by itself (Ray or Serve failed): its status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--temp-dir", required=True)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--max-ongoing-requests", type=int, default=5)
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument("--batch-wait-timeout-s", type=float, default=0.01)
    parser.add_argument("--gpus-per-replica", type=float, default=0)
    args = parser.parse_args()
    supervisor = os.getpid()
    signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)  # before the fork: none can be missed
    driver = os.fork()
    if driver:
        sys.exit(supervise(driver))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)
    os.setsid()
    shut_down_with_parent()
    if os.getppid() != supervisor:  # it died before the line above
        sys.exit(1)
    drive(args)


if __name__ == "__main__":
    main()
