"""Test instrument: an HTTP/1.1 proxy on 127.0.0.1 that puts faults between the load generator and a real server.

Every request is passed on to the server unchanged, except during a fault window opened with `inject`:
then the proxy answers `status` itself (a server answering 503 for a while), or holds each request for
`delay_s` before passing it on (answers slower than the request timeout). It counts what it did, so a test
can check that every faulty answer was counted by servingbench, none dropped.
"""
from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Hop-by-hop headers belong to one connection (RFC 9110 7.6.1) and the proxy writes its own framing, date and
# server name; every other header passes through both ways, so protocol headers such as KServe v2's
# Inference-Header-Content-Length reach the other side.
NOT_RELAYED = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
               "host", "content-length", "date", "server"}


def end_to_end(headers) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in NOT_RELAYED}


@dataclass(frozen=True)
class Fault:
    until: float  # time.monotonic() at which the window closes
    status: int | None = None
    delay_s: float = 0.0


class FaultProxy:
    """Start with `start()`, point the load at `url`, open a fault window with `inject`, `stop()` at the end."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.fault = Fault(until=0.0)
        self.answered_status = 0  # requests the proxy answered with the fault's status itself
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, for_s: float, status: int | None = None, delay_s: float = 0.0) -> None:
        self.fault = Fault(until=time.monotonic() + for_s, status=status, delay_s=delay_s)

    def current_fault(self) -> Fault | None:
        fault = self.fault
        return fault if time.monotonic() < fault.until else None

    def count(self, fault: Fault) -> None:
        with self._lock:
            if fault.status is not None:
                self.answered_status += 1


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the load generator's users expect
        server_connection: http.client.HTTPConnection | None = None

        def log_message(self, format, *args):  # noqa: A002 - the base class's signature; quiet
            pass

        def _relay(self) -> None:
            try:
                self._pass_on()
            except (OSError, http.client.HTTPException):  # the client gave up (timeout) or the server is gone
                self.close_connection = True

        def _pass_on(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            fault = proxy.current_fault()
            if fault is not None:
                proxy.count(fault)
                if fault.status is not None:
                    return self._answer(fault.status, b"fault injected by the test proxy",
                                        {"Content-Type": "text/plain"})
                time.sleep(fault.delay_s)
            if self.server_connection is None:
                self.server_connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
            self.server_connection.request(self.command, upstream.path.rstrip("/") + self.path, body,
                                           end_to_end(self.headers))
            answer = self.server_connection.getresponse()
            self._answer(answer.status, answer.read(), end_to_end(answer.headers))

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _relay

    return Handler
