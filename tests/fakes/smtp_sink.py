"""An SMTP server on loopback (aiosmtpd ``Controller``, port 0) that records every message as an
``email.message.EmailMessage``, and can be told to answer the next messages with a temporary (4xx) or permanent
(5xx) error."""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class _PortZeroController(Controller):
    """aiosmtpd's Controller probes ``hostname:port`` once started; with port 0 it learns the bound port first."""

    def _trigger_server(self):
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    def __init__(self):
        self.received: list[Received] = []
        self._answers: deque[str] = deque()
        self._lock = threading.Lock()
        self._controller: _PortZeroController | None = None

    # aiosmtpd handler hooks
    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            answer = self._answers.popleft() if self._answers else None
        if answer:
            return answer
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self._lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    # lifecycle
    def start(self) -> SmtpSink:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
        self._controller = _PortZeroController(self, hostname="127.0.0.1", port=0)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        assert self._controller is not None
        return self._controller.port

    # scripting
    def fail_temporarily(self, times: int = 1) -> None:
        with self._lock:
            self._answers.extend(["451 4.3.0 Try again later"] * times)

    def fail_permanently(self, times: int = 1) -> None:
        with self._lock:
            self._answers.extend(["554 5.7.1 Message rejected"] * times)

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [item.message for item in self.received]
