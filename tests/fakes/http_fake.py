"""A scriptable HTTP server on loopback: the base of the detector and LLM fakes (real sockets, real HTTP).

Each fake answers every route with a default handler; a test can queue one-shot responses per route
(``script``), slow every answer down (``delay``), drop connections, and stop and restart the server on the same
port to play a service that goes away and comes back. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    json: object = None
    body: bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0
    drop: bool = False  # close the connection without answering

    def payload(self) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps(self.json if self.json is not None else {}).encode()


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self):
        return json.loads(self.body or b"null")


class FakeHttpServer:
    def __init__(self):
        self.requests: list[RecordedRequest] = []
        self.delay = 0.0
        self._scripts: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.tls_context = None  # an ``ssl.SSLContext`` (server side) to serve https instead of http

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> FakeHttpServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the body waits for the client's delayed
            # ACK of the headers (40 ms on Linux), as no real inference server makes its clients wait.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                with fake._lock:
                    fake._connections.add(self.connection)

            def finish(self):
                with fake._lock:
                    fake._connections.discard(self.connection)
                super().finish()

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
                with fake._lock:
                    fake.requests.append(request)
                reply = fake._next_reply(request)
                wait = fake.delay + reply.delay
                if wait:
                    time.sleep(wait)
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                payload = reply.payload()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.allow_reuse_address = True
        self.port = self._server.server_address[1]
        if self.tls_context is not None:
            self._server.socket = self.tls_context.wrap_socket(self._server.socket, server_side=True)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), name=f"fake-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open (keep-alive) connection, as a crashed service would."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            open_connections, self._connections = list(self._connections), set()
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def restart(self) -> None:
        """Come back on the same port (after ``stop``)."""
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_context is not None else 'http'}://127.0.0.1:{self.port}"

    # --- scripting -------------------------------------------------------------------------------------------
    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next ``len(replies)`` requests to ``method path`` with these replies, in order."""
        with self._lock:
            self._scripts[(method.upper(), path)].extend(replies)

    def fail(self, method: str, path: str, times: int = 1, status: int = 500) -> None:
        self.script(method, path, *[Reply(status=status, json={"error": "scripted failure"})] * times)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def _next_reply(self, request: RecordedRequest) -> Reply:
        key = (request.method, request.path.split("?")[0])
        with self._lock:
            queue = self._scripts.get(key)
            if queue:
                return queue.popleft()
        return self.default_reply(request)

    def default_reply(self, request: RecordedRequest) -> Reply:
        return Reply(status=404, json={"error": "not found"})
