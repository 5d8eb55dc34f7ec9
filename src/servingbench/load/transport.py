"""Sending prepared requests over one connection: HTTP(S) keep-alive, or gRPC (protocol "grpc", body =
serialised message, path = the full method name).

Used by the correctness check (one request at a time, untimed) and by LoadGen's sender threads;
the closed loop times its requests on a lean path of its own (http_wire.py, locust_worker.py).
"""
from __future__ import annotations

import http.client
from typing import Any, Callable
from urllib.parse import urlsplit

from servingbench.load.contracts import PreparedRequest

# (status, body, error): HTTP status or gRPC code (0 = OK), the answer, None when it is a success.
Answer = tuple[int, bytes, "str | None"]


class Connection:
    """One connection to a server, reopened after a transport error; not thread-safe (one per thread)."""

    def __init__(self, base_url: str, timeout_s: float):
        parts = urlsplit(base_url)
        if not parts.hostname:
            raise ValueError(f"no host in base URL '{base_url}'")
        self.timeout_s = timeout_s
        self._netloc = parts.netloc
        self._http: http.client.HTTPConnection | None = None
        self._grpc: Any = None  # a grpc.Channel, made on first use (grpc is imported only for gRPC)
        self._grpc_methods: dict[str, Callable] = {}
        if parts.scheme in ("http", "https"):  # a grpc:// base URL serves gRPC requests only
            conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            self._http = conn_cls(parts.hostname, parts.port, timeout=timeout_s)

    def send(self, request: PreparedRequest) -> Answer:
        if request.protocol == "grpc":
            return self._send_grpc(request.path, request.body)
        if self._http is None:
            raise ValueError(f"an HTTP request needs an http:// or https:// base URL, not {self._netloc}")
        try:
            self._http.request(request.method, request.path, body=request.body, headers=request.headers)
            response = self._http.getresponse()
            answer = response.read()
        except TimeoutError:
            self._http.close()
            return 0, b"", "timeout"
        except (OSError, http.client.HTTPException) as exc:
            self._http.close()  # reconnects on the next request
            return 0, b"", f"{type(exc).__name__}: {exc}"[:200]
        status = response.status
        return status, answer, None if 200 <= status < 300 else f"HTTP {status}"

    def _send_grpc(self, method: str, body: bytes) -> Answer:
        import grpc

        if self._grpc is None:
            self._grpc = grpc.insecure_channel(self._netloc)
        channel = self._grpc
        call = self._grpc_methods.get(method) or self._grpc_methods.setdefault(method, channel.unary_unary(method))
        try:
            return 0, call(body, timeout=self.timeout_s), None
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return 0, b"", "timeout"
            return exc.code().value[0], f"{exc.details()}".encode(), f"gRPC {exc.code().name}"

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._grpc is not None:
            self._grpc.close()


def send_once(base_url: str, request: PreparedRequest, timeout_s: float) -> Answer:
    connection = Connection(base_url, timeout_s)
    try:
        return connection.send(request)
    finally:
        connection.close()
