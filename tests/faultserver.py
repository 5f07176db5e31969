"""A raw TCP server on loopback that misbehaves on purpose (drips, stalls, resets, lies).

pytest-httpserver is used for well-behaved answers; this server covers what a real HTTP
server library will not do: headers that never come, a body sent a byte a second, a
connection reset halfway, a gzip body that expands past any cap.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

Behaviour = Callable[[socket.socket, bytes], None]


def respond(status: str, body: bytes, headers: dict[str, str] | None = None) -> Behaviour:
    def behave(conn: socket.socket, _request: bytes) -> None:
        head = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
        lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
        conn.sendall(f"HTTP/1.1 {status}\r\n{lines}\r\n".encode() + body)
    return behave


def stall_before_headers(seconds: float) -> Behaviour:
    def behave(conn: socket.socket, _request: bytes) -> None:
        time.sleep(seconds)
    return behave


def drip(body: bytes, every_s: float = 1.0) -> Behaviour:
    def behave(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode())
        for byte in body:
            conn.sendall(bytes([byte]))
            time.sleep(every_s)
    return behave


def reset_mid_body(body: bytes) -> Behaviour:
    def behave(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                     f"Content-Length: {len(body) * 4}\r\n\r\n".encode() + body)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return behave


def endless_body(chunk: bytes = b"<item>" * 10_000, declared: int | None = None) -> Behaviour:
    """A body that never ends (a '1 GB' answer), optionally with a Content-Length."""
    def behave(conn: socket.socket, _request: bytes) -> None:
        length = f"Content-Length: {declared}\r\n" if declared else ""
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n{length}\r\n".encode())
        try:
            while True:
                conn.sendall(chunk)
        except OSError:
            return
    return behave


def gzip_bomb(expanded: int) -> Behaviour:
    body = gzip.compress(b"<" * expanded, compresslevel=9)
    return respond("200 OK", body, {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"})


class FaultServer:
    """One behaviour per path; every connection is handled in its own thread."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, Behaviour] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(4096)
                if not data:
                    return
                request += data
            path = request.split(b" ", 2)[1].decode("latin-1")
            behaviour = self.routes.get(path, respond("404 Not Found", b"no such path"))
            try:
                behaviour(conn, request)
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@contextmanager
def fault_server(host: str = "127.0.0.1"):
    server = FaultServer(host)
    try:
        yield server
    finally:
        server.close()
