"""A WebSocket peer that stops reading: a raw socket with a tiny receive buffer that completes the handshake and
never reads again, so whatever the server sends it piles up in the server (used by tests and bench/ws_fanout.py)."""

from __future__ import annotations

import base64
import os
import socket


def stalled_websocket(host: str, port: int, path: str, *, headers: dict[str, str] | None = None) -> socket.socket:
    """The open, upgraded socket (``ConnectionError`` when the server does not answer 101)."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    raw.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += raw.recv(1)
    if b" 101 " not in response.split(b"\r\n")[0]:
        raw.close()
        raise ConnectionError(f"the WebSocket handshake failed: {response[:80]!r}")
    return raw


def read_until_quiet(raw: socket.socket, quiet_seconds: float = 1.0) -> int:
    """Read everything until ``quiet_seconds`` pass without data; returns the byte count."""
    raw.settimeout(quiet_seconds)
    total = 0
    try:
        while chunk := raw.recv(1 << 20):
            total += len(chunk)
    except TimeoutError:
        pass
    return total
