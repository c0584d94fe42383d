"""A webhook receiver on loopback, built on ``FakeHttpServer``: answers 200 by default, can be scripted (500 then
200, a redirect with ``Location``, a 4xx), and records every request with its exact body bytes and headers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tests.fakes.http_fake import FakeHttpServer, RecordedRequest, Reply

HOOK_PATH = "/hook"


@dataclass
class HookReply(Reply):
    """A reply that may carry extra response headers (``Location`` of a redirect)."""

    headers: dict[str, str] = field(default_factory=dict)


class WebhookSink(FakeHttpServer):
    def __init__(self):
        super().__init__()
        self._current = threading.local()

    def start(self) -> WebhookSink:
        super().start()
        sink = self
        base = self._server.RequestHandlerClass

        class Handler(base):
            def end_headers(self):
                reply = getattr(sink._current, "reply", None)
                for name, value in (getattr(reply, "headers", None) or {}).items():
                    self.send_header(name, value)
                super().end_headers()

        self._server.RequestHandlerClass = Handler
        return self

    def _next_reply(self, request: RecordedRequest) -> Reply:
        reply = super()._next_reply(request)
        self._current.reply = reply
        return reply

    def default_reply(self, request: RecordedRequest) -> Reply:
        return HookReply(status=200, json={"ok": True})

    # --- helpers ---------------------------------------------------------------------------------------------
    def hook_url(self, path: str = HOOK_PATH) -> str:
        return f"{self.url}{path}"

    def answer(self, *statuses: int, path: str = HOOK_PATH) -> None:
        """The next POSTs to ``path`` get these statuses, in order (then 200 again)."""
        self.script("POST", path, *[HookReply(status=status, json={"status": status}) for status in statuses])

    def redirect(self, to: str, *, status: int = 307, path: str = HOOK_PATH) -> None:
        self.script("POST", path, HookReply(status=status, body=b"", headers={"Location": to}))

    def received(self, path: str = HOOK_PATH) -> list[RecordedRequest]:
        return [request for request in self.requests_to(path) if request.method == "POST"]


def header(request: RecordedRequest, name: str) -> str | None:
    """A request header, case-insensitively."""
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return None
