"""The timed HTTP path's framing, against local TCP servers that answer with exactly the bytes a test scripts."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import pytest

from servingbench.load.http_wire import Exchange, HttpWire, encode_request

# A script gets the accepted connection and the requests read so far; it answers (or not) and returns
# False to close the connection.
Script = Callable[[socket.socket, int], bool]


def read_request(conn: socket.socket) -> bytes:
    """One request (headers and a Content-Length body); b"" when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                   if line.startswith(b"content-length:")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


@contextmanager
def scripted_server(script: Script) -> Iterator[tuple[int, list[bytes], list[int]]]:
    """(port, requests received, connections accepted so far as a one-item list) while the server runs."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    received: list[bytes] = []
    accepted = [0]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted[0] += 1
            with conn:
                while request := read_request(conn):
                    received.append(request)
                    if not script(conn, len(received)):
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received, accepted
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def answer(conn: socket.socket, data: bytes) -> bool:
    conn.sendall(data)
    return True


def exchanges(script: Script, count: int = 1) -> list[Exchange]:
    """`count` exchanges of REQUEST on one connection's worth of HttpWire against a scripted server."""
    with scripted_server(script) as (port, _, _accepted):
        wire = HttpWire("127.0.0.1", port, 5)
        try:
            return [wire.exchange(REQUEST) for _ in range(count)]
        finally:
            wire.close()


REQUEST = encode_request("POST", "127.0.0.1", "/predict", {"Content-Type": "application/json"}, b'{"x": 1}')


def test_request_bytes_are_made_once_with_host_and_length():
    assert REQUEST == (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 8\r\n\r\n{\"x\": 1}")
    assert encode_request("GET", "h:1", "/ready", {}, b"") == b"GET /ready HTTP/1.1\r\nHost: h:1\r\n\r\n"
    assert encode_request("GET", "10.0.0.1:80", "/", {"host": "api.example"}, b"") == \
        b"GET / HTTP/1.1\r\nHost: api.example\r\n\r\n"


def test_content_length_answers_on_one_keep_alive_connection():
    body = b"y" * 200_000  # larger than one read
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + body
    with scripted_server(lambda conn, n: answer(conn, reply)) as (port, received, accepted):
        wire = HttpWire("127.0.0.1", port, 5)
        first, second = wire.exchange(REQUEST), wire.exchange(REQUEST)
        wire.close()
    for exchange in (first, second):
        assert exchange.error is None and exchange.status == 200
        assert exchange.bytes_in == len(reply)
        # kernel arrival stamps: an answer may begin arriving before this process returns from its write
        assert exchange.sent_ns <= exchange.written_ns and exchange.sent_ns < exchange.first_byte_ns <= exchange.end_ns
        assert exchange.end_ns <= exchange.read_ns
    assert received == [REQUEST, REQUEST] and accepted[0] == 1


def test_chunked_answer_with_extension_and_trailer_is_read_to_its_end():
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5;note=x\r\nhello\r\n6\r\n world\r\n0\r\nChecksum: 1\r\n\r\n")

    def in_pieces(conn: socket.socket, n: int) -> bool:
        for at in range(0, len(reply), 7):  # split across reads, mid-size-line and mid-chunk
            conn.sendall(reply[at:at + 7])
            time.sleep(0.002)
        return True

    with scripted_server(in_pieces) as (port, _, accepted):
        wire = HttpWire("127.0.0.1", port, 5)
        exchanges = [wire.exchange(REQUEST) for _ in range(3)]
        wire.close()
    assert all(e.error is None and e.bytes_in == len(reply) for e in exchanges)
    assert accepted[0] == 1  # the framing ended where the answer did: the connection stayed usable


def test_server_closing_keep_alive_reconnects_outside_the_timed_request():
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    with scripted_server(lambda conn, n: not answer(conn, reply)) as (port, received, accepted):
        wire = HttpWire("127.0.0.1", port, 5)
        exchanges = [wire.exchange(REQUEST) for _ in range(3)]
        wire.close()
    assert all(e.error is None and e.status == 200 for e in exchanges)
    assert len(received) == 3 and accepted[0] == 3


def test_idle_connection_closed_silently_is_retried_once():
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    # The server answers, then drops the connection without saying so (an idle timeout).
    with scripted_server(lambda conn, n: not answer(conn, reply)) as (port, received, accepted):
        wire = HttpWire("127.0.0.1", port, 5)
        first = wire.exchange(REQUEST)
        time.sleep(0.1)
        second = wire.exchange(REQUEST)
        wire.close()
    assert first.error is None and second.error is None
    assert len(received) == 2 and accepted[0] == 2


def test_503_with_a_body_is_a_failure_that_keeps_the_connection():
    busy = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n\r\nbusy, retry"
    fine = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with scripted_server(lambda conn, n: answer(conn, busy if n == 1 else fine)) as (port, _, accepted):
        wire = HttpWire("127.0.0.1", port, 5)
        first, second = wire.exchange(REQUEST), wire.exchange(REQUEST)
        wire.close()
    assert first.status == 503 and first.error == "HTTP 503" and first.bytes_in == len(busy)
    assert second.error is None and second.status == 200
    assert accepted[0] == 1


def test_partial_answer_then_reset_is_a_failure_with_what_arrived():
    def half_then_reset(conn: socket.socket, n: int) -> bool:
        if n > 1:
            return answer(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)
        time.sleep(0.05)  # the client reads what came before the reset
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        return False

    with scripted_server(half_then_reset) as (port, received, _):
        wire = HttpWire("127.0.0.1", port, 5)
        broken = wire.exchange(REQUEST)
        after = wire.exchange(REQUEST)
        wire.close()
    assert broken.status == 200 and broken.error is not None
    assert "40 of 100" in broken.error or "Reset" in broken.error
    assert broken.first_byte_ns > 0 and broken.end_ns >= broken.first_byte_ns
    assert after.error is None and len(received) == 2  # a new connection for the next request, not a retry


def test_answer_with_no_framing_runs_until_the_server_closes():
    reply = b"HTTP/1.0 200 OK\r\n\r\nall of it"
    exchange, again = exchanges(lambda conn, n: not answer(conn, reply), count=2)
    assert exchange.error is None and exchange.bytes_in == len(reply) and again.error is None


def test_interim_100_continue_is_skipped():
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    [exchange] = exchanges(lambda conn, n: answer(conn, reply))
    assert exchange.error is None and exchange.status == 201


def test_bytes_beyond_the_answer_are_a_framing_error():
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"
    [exchange] = exchanges(lambda conn, n: answer(conn, reply))
    assert exchange.error is not None and "beyond" in exchange.error


def test_a_silent_server_times_out_and_the_connection_is_dropped():
    with scripted_server(lambda conn, n: (time.sleep(1.0), True)[1]) as (port, _, _accepted):
        wire = HttpWire("127.0.0.1", port, 0.3)
        started = time.perf_counter()
        exchange = wire.exchange(REQUEST)
        waited = time.perf_counter() - started
        wire.close()
    assert exchange.error == "timeout" and exchange.status == 0
    assert waited == pytest.approx(0.3, abs=0.25)


def test_nothing_listening_is_an_error_not_a_crash():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    wire = HttpWire("127.0.0.1", port, 1)
    with pytest.raises(ConnectionRefusedError):
        wire.exchange(REQUEST)
