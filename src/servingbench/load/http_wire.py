"""HTTP/1.1 on a bare socket, for the timed path: a request's bytes made once, an answer read as bytes.

A load generator's own cost is part of every figure it prints, so the timed region holds only the
socket write and the read of one complete answer: status line and headers, then the body framed by
Content-Length, chunked transfer coding, or the server closing the connection. The body is counted
and dropped, never decoded (correctness has its own phase). An answer's times are the kernel's
arrival stamps, so the load generator's own wake-up is not counted as the server's latency.
"""
from __future__ import annotations

import _socket
import socket
import ssl
import struct
import time
from typing import Callable, NamedTuple

from gevent import get_hub, getcurrent

READ_SIZE = 65536
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")
TIMESTAMP_SPACE = socket.CMSG_SPACE(TIMESPEC.size)
NO_BODY_STATUSES = (204, 304)


def encode_request(method: str, host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The whole request as it goes on the wire: request line, headers, body. A Host header given in
    `headers` wins over `host` (a virtual host behind an address)."""
    named = {k.lower(): v for k, v in headers.items()}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {named.get('host', host)}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
    if body or method not in ("GET", "HEAD"):
        if "content-length" not in named:
            lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Exchange(NamedTuple):
    """One request and its answer, times from time.perf_counter_ns()."""

    sent_ns: int          # the write began
    written_ns: int       # the request was fully handed to the kernel
    first_byte_ns: int    # the first byte of the answer arrived (0: none did)
    end_ns: int           # the answer's last byte arrived, or the exchange failed
    read_ns: int          # this process had read the whole answer: read - end is its own lag
    status: int           # HTTP status; 0 when no status line arrived
    bytes_in: int         # bytes of the answer, headers included
    error: str | None     # None for a complete 2xx answer


class AnswerIncomplete(Exception):
    """The connection ended, or the framing broke, before the answer was complete."""


class HubSocket:
    """A non-blocking socket driven directly by gevent's hub, with one reusable timeout timer.

    gevent's socket wrapper and a gevent.Timeout per wait cost ~11 µs a request here (one process:
    ~36k requests/s through them, ~62k without); on a closed loop's bursts of answers that cost
    queues up, so each answer waits for the users woken before it. Cooperative in the Locust worker; from a thread
    without gevent it simply blocks that thread (its own hub runs the wait)."""

    def __init__(self, address: tuple[str, int], timeout_s: float):
        connected = socket.create_connection(address, timeout=timeout_s)  # cooperative when gevent patched it
        connected.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = _socket.socket(fileno=connected.detach())
        self._sock.setblocking(False)
        # The kernel stamps when each segment arrived: an answer's time stops there, not when this
        # process got round to reading it (the instrument's own wake-up is not the server's latency).
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._realtime_offset_ns = time.time_ns() - time.perf_counter_ns()
        self._last_arrival_ns = 0
        self._hub = get_hub()
        fd = self._sock.fileno()
        self._readable, self._writable = self._hub.loop.io(fd, 1), self._hub.loop.io(fd, 2)
        self._timer = self._hub.loop.timer(timeout_s)

    def _wait(self, watcher) -> None:  # type: ignore[no-untyped-def]
        self._timer.start(getcurrent().throw, TimeoutError)
        try:
            self._hub.wait(watcher)
        finally:
            self._timer.stop()

    def sendall(self, data: bytes) -> None:
        view, sent = memoryview(data), 0
        while sent < len(data):
            try:
                sent += self._sock.send(view[sent:])
            except BlockingIOError:
                self._wait(self._writable)

    def recv_answer_into(self, view: memoryview | bytearray) -> int:
        """The first read of an answer: just after a request nothing is there yet, so wait before trying."""
        self._wait(self._readable)
        return self.recv_into(view)

    def recv_into(self, view: memoryview | bytearray) -> int:
        while True:
            try:
                size, ancillary, _, _ = self._sock.recvmsg_into((view,), TIMESTAMP_SPACE)
            except BlockingIOError:
                self._wait(self._readable)
                continue
            if ancillary:
                seconds, nanoseconds = TIMESPEC.unpack_from(ancillary[0][2])
                self._last_arrival_ns = seconds * 1_000_000_000 + nanoseconds - self._realtime_offset_ns
            return size

    def arrived(self) -> int:
        """When the data of the last read arrived (perf_counter_ns); without a kernel stamp, now."""
        return self._last_arrival_ns or time.perf_counter_ns()

    def recv(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[:self.recv_into(buffer)])

    def close(self) -> None:
        for watcher in (self._readable, self._writable, self._timer):
            watcher.close()
        self._sock.close()


class HttpWire:
    """One keep-alive connection; reopened (outside the timed region) when the server closed it."""

    def __init__(self, host: str, port: int, timeout_s: float, tls: bool = False):
        self.address = (host, port)
        self.timeout_s = timeout_s
        self._tls = ssl.create_default_context() if tls else None
        self._sock: HubSocket | ssl.SSLSocket | None = None
        self._recv_answer_into: Callable[[bytearray], int]  # set by _connect, with the socket
        self._arrived_ns: Callable[[], int]
        self._served = 0  # answers on the current connection: a reused one may have been closed idle
        self._status = self._received = 0  # how far the current answer got, for a failure's record
        self._buffer = bytearray(READ_SIZE)
        self._view = memoryview(self._buffer)

    def exchange(self, request: bytes, head_only: bool = False) -> Exchange:
        if self._sock is None:
            self._connect()
        reused = self._served > 0
        result = self._timed(request, head_only)
        if result.error is not None and reused and result.first_byte_ns == 0 and result.status == 0:
            # An idle keep-alive connection the server had already closed: the request never reached
            # it, as every HTTP client assumes; send it once more on a fresh connection.
            self.close()
            self._connect()
            result = self._timed(request, head_only)
        return result

    def _connect(self) -> None:
        if self._tls:  # TLS through the ssl module's socket (gevent's, in the Locust worker); times from this process
            sock = socket.create_connection(self.address, timeout=self.timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self._sock = self._tls.wrap_socket(sock, server_hostname=self.address[0])
            self._recv_answer_into = tls.recv_into
            self._arrived_ns = time.perf_counter_ns
        else:
            plain = self._sock = HubSocket(self.address, self.timeout_s)
            self._recv_answer_into = plain.recv_answer_into
            self._arrived_ns = plain.arrived
        self._served = 0

    def _timed(self, request: bytes, head_only: bool) -> Exchange:
        sock = self._sock
        assert sock is not None
        perf_ns = time.perf_counter_ns
        sent = perf_ns()
        written = first = self._status = self._received = 0
        try:
            sock.sendall(request)
            written = perf_ns()
            received = self._recv_answer_into(self._buffer)
            if received:
                first = self._arrived_ns()
            status, received, keep_alive = self._read_answer(received, head_only)
        except TimeoutError:
            return self._failed(sent, written, first, "timeout")
        except (OSError, AnswerIncomplete) as exc:
            return self._failed(sent, written, first, f"{type(exc).__name__}: {exc}"[:200])
        read = perf_ns()
        end = self._arrived_ns()
        if not sent < end <= read:  # the wall clock was stepped since the connection opened: this process's time
            end = first = read
        self._served += 1
        if not keep_alive:
            self.close()
        return Exchange(sent, written, first, end, read, status, received,
                        None if 200 <= status < 300 else f"HTTP {status}")

    def _failed(self, sent: int, written: int, first: int, error: str) -> Exchange:
        """The exchange as far as it went: the status if the headers came, the bytes known to have arrived."""
        self.close()  # whatever is still in flight would be read as the next answer
        now = time.perf_counter_ns()
        return Exchange(sent, written, first, now, now, self._status, self._received, error)

    def _read_answer(self, received: int, head_only: bool) -> tuple[int, int, bool]:
        """(status, bytes of the answer, connection still usable) once the answer is complete."""
        buffer = self._buffer
        while True:
            if received == 0:
                raise AnswerIncomplete("connection closed before an answer")
            head_end = buffer.find(b"\r\n\r\n", 0, received)
            while head_end < 0:  # headers longer than one read: keep them whole in the buffer
                if received == len(buffer):
                    self._grow()
                    buffer = self._buffer
                more = self._sock.recv_into(self._view[received:])  # type: ignore[union-attr]
                if more == 0:
                    raise AnswerIncomplete(f"connection closed in the headers after {received} bytes")
                received += more
                head_end = buffer.find(b"\r\n\r\n", 0, received)
            head = bytes(buffer[:head_end]).lower()
            try:
                status = int(head[9:12])
            except ValueError:
                raise AnswerIncomplete(f"not an HTTP status line: {bytes(buffer[:40])!r}") from None
            body_start = head_end + 4
            self._status, self._received = status, received
            if status >= 200:
                break
            # 1xx: an interim answer; the real one follows (possibly already in the buffer).
            rest = received - body_start
            buffer[:rest] = buffer[body_start:received]
            received = rest or self._sock.recv_into(self._buffer)  # type: ignore[union-attr]
        keep_alive = not (b"\r\nconnection: close" in head or head.startswith(b"http/1.0")
                          and b"\r\nconnection: keep-alive" not in head)
        if head_only or status in NO_BODY_STATUSES:
            body = 0
        elif b"\r\ntransfer-encoding:" in head and b"chunked" in head.split(b"\r\ntransfer-encoding:", 1)[1].split(b"\r\n", 1)[0]:
            body = self._read_chunked(received - body_start, buffer[body_start:received])
        elif (at := head.find(b"\r\ncontent-length:")) >= 0:
            length = int(head[at + 17:].split(b"\r\n", 1)[0])
            body = self._read_exactly(length, received - body_start)
        else:  # no framing: the body runs until the server closes the connection
            body = self._read_until_closed(received - body_start)
            keep_alive = False
        if len(self._buffer) > READ_SIZE:
            self._buffer = bytearray(READ_SIZE)
            self._view = memoryview(self._buffer)
        return status, body_start + body, keep_alive

    def _grow(self) -> None:
        self._buffer = self._buffer + bytearray(len(self._buffer))
        self._view = memoryview(self._buffer)

    def _read_exactly(self, length: int, have: int) -> int:
        if have > length:
            raise AnswerIncomplete(f"{have - length} bytes beyond the answer's Content-Length")
        recv_into, view = self._sock.recv_into, self._view  # type: ignore[union-attr]
        while have < length:
            more = recv_into(view[:min(READ_SIZE, length - have)])
            if more == 0:
                raise AnswerIncomplete(f"connection closed after {have} of {length} body bytes")
            have += more
        return length

    def _read_until_closed(self, have: int) -> int:
        recv_into, view = self._sock.recv_into, self._view  # type: ignore[union-attr]
        while (more := recv_into(view[:READ_SIZE])) > 0:
            have += more
        return have

    def _read_chunked(self, have: int, start: bytes | bytearray) -> int:
        """Body bytes on the wire of a chunked answer (sizes, extensions, trailers included)."""
        data = bytearray(start)
        position = 0  # where the next chunk-size line begins
        while True:
            line_end = data.find(b"\r\n", position)
            if line_end < 0:
                data += self._more(len(data))
                continue
            size = int(data[position:line_end].split(b";", 1)[0], 16)
            if size == 0:  # the last chunk; trailers, if any, end with an empty line
                while (trailer_end := data.find(b"\r\n\r\n", line_end)) < 0:
                    data += self._more(len(data))
                end = trailer_end + 4
                if end < len(data):
                    raise AnswerIncomplete(f"{len(data) - end} bytes beyond the chunked answer")
                return end
            chunk_end = line_end + 2 + size + 2
            while len(data) < chunk_end:
                data += self._more(len(data))
            position = chunk_end

    def _more(self, have: int) -> bytes:
        more = self._sock.recv(READ_SIZE)  # type: ignore[union-attr]
        if not more:
            raise AnswerIncomplete(f"connection closed in a chunked body after {have} bytes")
        return more

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
