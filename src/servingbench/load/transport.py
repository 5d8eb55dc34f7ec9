"""Sending one prepared request, untimed: HTTP(S), or gRPC (method "GRPC", body = serialised message).

Used before load (correctness checks); the load engine has its own timed loop.
"""
from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from servingbench.adapters.base import PreparedRequest

GRPC_METHOD = "GRPC"


def send_once(base_url: str, request: PreparedRequest, timeout_s: float) -> tuple[int, bytes]:
    """(status, body): the HTTP status, or for gRPC 200 when OK (the error raised otherwise names the code)."""
    parts = urlsplit(base_url)
    if request.method == GRPC_METHOD:
        import grpc

        with grpc.insecure_channel(parts.netloc) as channel:
            try:
                return 200, channel.unary_unary(request.path)(request.body, timeout=timeout_s)
            except grpc.RpcError as exc:
                return 500, f"gRPC {exc.code().name}: {exc.details()}".encode()
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request(request.method, request.path, body=request.body, headers=request.headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
