"""An HTTP/1.1 keep-alive server that answers every request after a fixed delay.

A known service time is what makes the load engine's accuracy testable: at U closed-loop users and
a delay D, the true mean latency is D and the true throughput U/D. Run it with
`python -m servingbench.testing.delay_server --port P --delay-ms 20`. `/status/503` answers 503,
so failure counting can be checked too. `--concurrency C` serves at most C requests at a time (the
rest wait in arrival order), so the server has a known capacity of C/D requests per second: each
request is booked on the slot that frees first, from an exact schedule, so the event loop's
wake-up jitter delays answers slightly but never stretches the service time. `GET /metrics` is a
`--knee K` makes more concurrency hurt past K (as workers past a host's cores do): with C > K, each request
takes (C/K)^2 times the delay, so the capacity C/D peaks at C = K. `--busy-ms B` spins the CPU for B ms per
request, so the server's CPU time per request is known. `GET /metrics` is a
Prometheus page counting every other request answered (`delay_server_requests_total`) and their time
in the server (`delay_server_request_seconds`, a histogram), so metrics scraping can be checked against
the requests the load engine recorded.
"""
from __future__ import annotations

import argparse
import asyncio
import heapq
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

RESPONSE_BODY = b"ok"


def _response(status: int, reason: bytes) -> bytes:
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            % (status, reason, len(RESPONSE_BODY), RESPONSE_BODY))


OK = _response(200, b"OK")
UNAVAILABLE = _response(503, b"Service Unavailable")


class Metrics:
    """The server's own Prometheus counters (a registry per server, not the process-global one)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("delay_server_requests", "requests answered (metrics pages aside)",
                                registry=self.registry)
        self.seconds = Histogram("delay_server_request_seconds", "time from a request read to its answer",
                                 registry=self.registry)

    def page(self) -> bytes:
        body = generate_latest(self.registry)
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body))


class Slots:
    """C servers with a fixed service time, first come first served: when each is next free."""

    def __init__(self, count: int, service_s: float):
        self.free_at = [0.0] * count
        self.service_s = service_s

    def book(self, now: float) -> float:
        """The time the request that arrived at `now` finishes."""
        start = max(now, heapq.heappop(self.free_at))
        heapq.heappush(self.free_at, start + self.service_s)
        return start + self.service_s


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float,
                 slots: Slots | None, metrics: Metrics, busy_s: float = 0.0) -> None:
    loop = asyncio.get_running_loop()
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, _, header_block = head.partition(b"\r\n")
            length = 0
            for line in header_block.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if request_line.startswith(b"GET /metrics "):
                writer.write(metrics.page())
                continue
            arrived = loop.time()
            if busy_s:
                spin_until = time.thread_time() + busy_s
                while time.thread_time() < spin_until:
                    pass
            if slots is not None:
                await asyncio.sleep(slots.book(arrived) - loop.time())
            elif delay_s:
                await asyncio.sleep(delay_s)
            metrics.requests.inc()
            metrics.seconds.observe(loop.time() - arrived)
            writer.write(UNAVAILABLE if b" /status/503 " in request_line else OK)
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def service_s(delay_s: float, concurrency: int, knee: int | None) -> float:
    """Each request's time in a slot: the delay, stretched by (C/K)^2 past the knee."""
    return delay_s * (max(1.0, concurrency / knee) ** 2 if knee else 1.0)


async def serve(port: int, delay_s: float, concurrency: int | None, knee: int | None = None,
                busy_s: float = 0.0, host: str = "127.0.0.1") -> None:
    slots = Slots(concurrency, service_s(delay_s, concurrency, knee)) if concurrency else None
    metrics = Metrics()
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay_s, slots, metrics, busy_s), host, port,
                                        backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (a test network namespace's)")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, help="requests served at a time (default: no limit)")
    parser.add_argument("--knee", type=int, help="with --concurrency: past this many at a time, each is slower")
    parser.add_argument("--busy-ms", type=float, default=0.0, help="CPU time spent on each request")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay_ms / 1000, args.concurrency, args.knee, args.busy_ms / 1000, args.host))


if __name__ == "__main__":
    main()
