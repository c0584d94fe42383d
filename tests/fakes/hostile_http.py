"""A hostile HTTP endpoint on loopback (real sockets): it reads the request, then either drips its response one byte
at a time (``drip``: the status line and headers never finish) or answers 200 with an endless body (``flood``).
It records how many requests arrived and how many body bytes it managed to write."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class HostileHttpServer:
    def __init__(self, mode: str = "drip", *, drip_interval: float = 0.1):
        if mode not in ("drip", "flood"):
            raise ValueError(mode)
        self.mode = mode
        self.drip_interval = drip_interval
        self.requests = 0
        self.bytes_written = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> HostileHttpServer:
        thread = threading.Thread(target=self._accept_loop, daemon=True, name=f"hostile-{self.port}")
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read_request(self, client: socket.socket) -> None:
        data = b""
        client.settimeout(5)
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = client.recv(65536)
            if not chunk:
                return
            rest += chunk
        self.requests += 1

    def _serve(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            try:
                self._read_request(client)
                if self.mode == "drip":
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
                        if self._stop.is_set():
                            return
                        client.sendall(bytes([byte]))
                        self.bytes_written += 1
                        time.sleep(self.drip_interval)
                else:
                    client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n")
                    client.sendall(b"Content-Length: 1073741824\r\n\r\n")
                    chunk = b"x" * 65536
                    while not self._stop.is_set() and self.bytes_written < 1 << 30:
                        client.sendall(chunk)
                        self.bytes_written += len(chunk)
            except OSError:
                return
