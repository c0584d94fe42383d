"""A minimal real MQTT 3.1.1 broker over TCP on 127.0.0.1 (port 0), in threads.

Speaks CONNECT/CONNACK, PUBLISH at QoS 0/1/2 (PUBACK, PUBREC/PUBREL/PUBCOMP), SUBSCRIBE/SUBACK with ``+``/``#``
wildcards, UNSUBSCRIBE, retained messages (an empty retained payload clears), the last will on an abrupt disconnect,
PINGREQ and DISCONNECT. Every PUBLISH it receives, and every will it publishes, is recorded as ``Published(topic,
payload, qos, retain, client_id)``. ``kick`` cuts clients off abruptly (their wills fire), as a network failure would.
Subscribers receive at QoS 0.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14


@dataclass(frozen=True)
class Published:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    client_id: str = ""
    will: bool = False


@dataclass
class _Client:
    sock: socket.socket
    client_id: str = ""
    will: Published | None = None
    subscriptions: dict[str, int] = field(default_factory=dict)
    clean_exit: bool = False
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching with ``+`` (one level) and ``#`` (the rest, also the parent level)."""
    pattern_levels, topic_levels = pattern.split("/"), topic.split("/")
    for index, level in enumerate(pattern_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(pattern_levels) == len(topic_levels)


def _encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _encode_length(len(body)) + body


def _string(data: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from("!H", data, offset)
    return data[offset + 2 : offset + 2 + length], offset + 2 + length


class FakeMqttBroker:
    def __init__(self):
        self.published: list[Published] = []
        self.retained: dict[str, Published] = {}
        self.connects: list[str] = []
        self._clients: list[_Client] = []
        self._lock = threading.Condition()
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> FakeMqttBroker:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self.port = server.getsockname()[1]
        self._server = server
        self._thread = threading.Thread(target=self._accept_loop, name=f"fake-mqtt-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        self.kick(fire_wills=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def kick(self, *, fire_wills: bool = True) -> None:
        """Cut every client off without a DISCONNECT (their wills fire unless ``fire_wills`` is false)."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.clean_exit = not fire_wills
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)

    # --- queries for tests -----------------------------------------------------------------------------------
    def messages_on(self, topic: str) -> list[Published]:
        with self._lock:
            return [message for message in self.published if message.topic == topic]

    def wait_for(self, predicate, timeout: float = 5.0):
        """Wait until ``predicate(broker)`` is truthy (messages arrive from other threads); returns its value."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(self)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met within {timeout} s; published: {self.published!r}")
                self._lock.wait(min(remaining, 0.05))

    def wait_for_message(self, topic: str, payload: bytes | None = None, timeout: float = 5.0) -> Published:
        def found(broker):
            for message in reversed(broker.published):
                if message.topic == topic and (payload is None or message.payload == payload):
                    return message
            return None

        return self.wait_for(found, timeout)

    # --- connection handling ---------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        server = self._server
        while server is not None and self._server is server:
            try:
                sock, _ = server.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = _Client(sock)
            with self._lock:
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _read_exact(self, sock: socket.socket, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data.extend(chunk)
        return bytes(data)

    def _read_packet(self, sock: socket.socket) -> tuple[int, int, bytes]:
        first = self._read_exact(sock, 1)[0]
        multiplier, length = 1, 0
        while True:
            byte = self._read_exact(sock, 1)[0]
            length += (byte & 0x7F) * multiplier
            if not byte & 0x80:
                break
            multiplier *= 128
        return first >> 4, first & 0x0F, self._read_exact(sock, length) if length else b""

    def _serve(self, client: _Client) -> None:
        try:
            while True:
                kind, flags, body = self._read_packet(client.sock)
                if kind == CONNECT:
                    self._on_connect(client, body)
                elif kind == PUBLISH:
                    self._on_publish(client, flags, body)
                elif kind == PUBREL:
                    client.send(_packet(PUBCOMP << 4, body[:2]))
                elif kind == SUBSCRIBE:
                    self._on_subscribe(client, body)
                elif kind == UNSUBSCRIBE:
                    self._on_unsubscribe(client, body)
                elif kind == PINGREQ:
                    client.send(_packet(PINGRESP << 4, b""))
                elif kind == DISCONNECT:
                    client.clean_exit = True
                    return
        except (OSError, ConnectionError, struct.error, IndexError):
            pass
        finally:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        with contextlib.suppress(OSError):
            client.sock.close()
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
            will = None if client.clean_exit else client.will
        if will is not None:
            self._route(will)

    def _on_connect(self, client: _Client, body: bytes) -> None:
        _protocol, offset = _string(body, 0)
        offset += 1  # protocol level
        flags = body[offset]
        offset += 3  # flags + keepalive
        client_id, offset = _string(body, offset)
        client.client_id = client_id.decode()
        if flags & 0x04:
            will_topic, offset = _string(body, offset)
            will_payload, offset = _string(body, offset)
            client.will = Published(
                will_topic.decode(), will_payload, (flags >> 3) & 0x03, bool(flags & 0x20), client.client_id, True
            )
        with self._lock:
            previous = [c for c in self._clients if c is not client and c.client_id == client.client_id]
            self.connects.append(client.client_id)
        for other in previous:  # client-id takeover
            with contextlib.suppress(OSError):
                other.sock.shutdown(socket.SHUT_RDWR)
        client.send(_packet(CONNACK << 4, b"\x00\x00"))

    def _on_publish(self, client: _Client, flags: int, body: bytes) -> None:
        qos, retain = (flags >> 1) & 0x03, bool(flags & 0x01)
        topic, offset = _string(body, 0)
        packet_id = b""
        if qos:
            packet_id, offset = body[offset : offset + 2], offset + 2
        self._route(Published(topic.decode(), body[offset:], qos, retain, client.client_id))
        if qos == 1:
            client.send(_packet(PUBACK << 4, packet_id))
        elif qos == 2:
            client.send(_packet(PUBREC << 4, packet_id))

    def _route(self, message: Published) -> None:
        with self._lock:
            self.published.append(message)
            if message.retain:
                if message.payload:
                    self.retained[message.topic] = message
                else:
                    self.retained.pop(message.topic, None)
            targets = [c for c in self._clients if any(topic_matches(p, message.topic) for p in c.subscriptions)]
            self._lock.notify_all()
        for target in targets:
            self._deliver(target, message.topic, message.payload, retain=False)

    def _deliver(self, client: _Client, topic: str, payload: bytes, *, retain: bool) -> None:
        encoded = topic.encode()
        body = struct.pack("!H", len(encoded)) + encoded + payload
        with contextlib.suppress(OSError):
            client.send(_packet((PUBLISH << 4) | (0x01 if retain else 0), body))

    def _on_subscribe(self, client: _Client, body: bytes) -> None:
        packet_id, offset = body[:2], 2
        granted, patterns = bytearray(), []
        while offset < len(body):
            pattern, offset = _string(body, offset)
            requested = body[offset]
            offset += 1
            client.subscriptions[pattern.decode()] = requested
            patterns.append(pattern.decode())
            granted.append(0)
        client.send(_packet(SUBACK << 4, packet_id + bytes(granted)))
        with self._lock:
            retained = [m for m in self.retained.values() if any(topic_matches(p, m.topic) for p in patterns)]
        for message in retained:
            self._deliver(client, message.topic, message.payload, retain=True)

    def _on_unsubscribe(self, client: _Client, body: bytes) -> None:
        packet_id, offset = body[:2], 2
        while offset < len(body):
            pattern, offset = _string(body, offset)
            client.subscriptions.pop(pattern.decode(), None)
        client.send(_packet(UNSUBACK << 4, packet_id))
