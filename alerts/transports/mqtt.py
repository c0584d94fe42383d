"""MQTT transport (CONTRACT §5.9) over paho-mqtt 2.x.

One persistent client per process, broker, topic prefix and QoS (the last will names ``<prefix>/status`` and carries
the channel's QoS, which §2.8 applies to every publish), running paho's network thread (``loop_start``), reconnecting
by itself. On every (re)connect it publishes ``<prefix>/status`` = ``online`` (retained) and the Home Assistant
discovery configs registered for it; its last will is ``<prefix>/status`` = ``offline`` (retained). A send while
the client is not connected publishes nothing and is a retryable failure, so paho never replays a message the outbox
will send again. A test send registers no discovery configs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings
from paho.mqtt.enums import CallbackAPIVersion

from alerts.payloads import body_bytes
from alerts.transports.base import SendResult, Transport

logger = logging.getLogger("hsi.alerts.mqtt")

CONNECT_WAIT_SECONDS = 5.0
PUBLISH_TIMEOUT_SECONDS = 10.0
KEEPALIVE_SECONDS = 30


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class ChannelTopics:
    """The MQTT settings of one channel (§2.8), defaults from settings."""

    broker_url: str
    prefix: str
    qos: int
    discovery: bool
    discovery_prefix: str
    publish_events: bool

    @classmethod
    def of(cls, channel) -> ChannelTopics:
        config = channel.config or {}
        qos = config.get("qos")
        return cls(
            broker_url=config.get("broker_url") or settings.MQTT_URL or "",
            prefix=(config.get("topic_prefix") or settings.MQTT_TOPIC_PREFIX or "hsi").strip("/"),
            qos=int(qos) if qos is not None else 1,
            discovery=bool(config.get("discovery", True)),
            discovery_prefix=(config.get("discovery_prefix") or settings.MQTT_DISCOVERY_PREFIX).strip("/"),
            publish_events=bool(channel.publish_events),
        )

    def camera_topic(self, camera_id: str, leaf: str) -> str:
        return f"{self.prefix}/cameras/{camera_id}/{leaf}"


# --- topics and payloads ----------------------------------------------------------------------------------------


def alert_messages(topics: ChannelTopics, payload: dict) -> list[Message]:
    """The three messages of one delivery (§5.9 table); a test payload goes to ``<prefix>/alerts`` only."""
    body = body_bytes(payload)
    messages = [Message(f"{topics.prefix}/alerts", body, False)]
    camera_id = (payload.get("camera") or {}).get("id")
    if payload.get("type") != "test" and camera_id:
        messages.append(Message(topics.camera_topic(camera_id, "alert"), body, True))
        messages.append(Message(topics.camera_topic(camera_id, "alert_active"), b"ON", False))
    return messages


def event_messages(topics: ChannelTopics, event_item: dict) -> list[Message]:
    """``<prefix>/events`` (the Event list item) and the camera's retained ``risk_score``."""
    messages = [Message(f"{topics.prefix}/events", body_bytes(event_item), False)]
    if event_item.get("risk_score") is not None:
        topic = topics.camera_topic(event_item["camera_id"], "risk_score")
        messages.append(Message(topic, str(int(event_item["risk_score"])).encode(), True))
    return messages


def camera_status_message(topics: ChannelTopics, camera_id: str, status: str) -> Message:
    value = b"online" if status == "online" else b"offline"
    return Message(topics.camera_topic(camera_id, "status"), value, True)


def discovery_topics(topics: ChannelTopics, camera_id: str) -> list[str]:
    base = f"{topics.discovery_prefix}/binary_sensor/hsi_{camera_id}"
    names = [f"{base}/alert/config", f"{base}/status/config"]
    if topics.publish_events:
        names.append(f"{topics.discovery_prefix}/sensor/hsi_{camera_id}/risk_score/config")
    return names


def discovery_messages(topics: ChannelTopics, camera_id: str, camera_name: str) -> list[Message]:
    """The retained Home Assistant discovery configs of one camera (§5.9)."""
    common = {
        "availability_topic": f"{topics.prefix}/status",
        "device": {
            "identifiers": [f"hsi_{camera_id}"],
            "name": camera_name,
            "manufacturer": "HSI",
            "model": "Camera folder",
        },
    }
    configs = [
        {
            "name": "Alert",
            "unique_id": f"hsi_{camera_id}_alert",
            "state_topic": topics.camera_topic(camera_id, "alert_active"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "off_delay": 60,
            "device_class": "safety",
            "json_attributes_topic": topics.camera_topic(camera_id, "alert"),
            **common,
        },
        {
            "name": "Status",
            "unique_id": f"hsi_{camera_id}_status",
            "state_topic": topics.camera_topic(camera_id, "status"),
            "payload_on": "online",
            "payload_off": "offline",
            "device_class": "connectivity",
            **common,
        },
    ]
    if topics.publish_events:
        configs.append(
            {
                "name": "Risk score",
                "unique_id": f"hsi_{camera_id}_risk_score",
                "state_topic": topics.camera_topic(camera_id, "risk_score"),
                "state_class": "measurement",
                **common,
            }
        )
    return [
        Message(topic, json.dumps(config, separators=(",", ":")).encode(), True)
        for topic, config in zip(discovery_topics(topics, camera_id), configs, strict=True)
    ]


def discovery_removal_messages(topics: ChannelTopics, camera_id: str) -> list[Message]:
    """Empty retained payloads that remove a deleted camera's discovery configs."""
    return [Message(topic, b"", True) for topic in discovery_topics(topics, camera_id)]


# --- connections ------------------------------------------------------------------------------------------------


class NotConnected(Exception):
    pass


class BrokerConnection:
    """One paho client with its network thread. Thread-safe: senders publish from any thread."""

    def __init__(self, broker_url: str, prefix: str, client_id: str, *, qos: int = 1):
        parts = urlsplit(broker_url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("MQTT broker URL must be mqtt:// or mqtts:// with a host")
        self.broker_url = broker_url
        self.prefix = prefix
        self.qos = qos
        self.host = parts.hostname
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._attempted = threading.Event()
        self._announcements: dict[str, list[Message]] = {}
        self.last_error = ""
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        if parts.username:
            client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            client.tls_set()
        client.will_set(f"{prefix}/status", b"offline", qos=qos, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self.client = client
        client.connect_async(self.host, self.port, keepalive=KEEPALIVE_SECONDS)
        client.loop_start()

    # paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self.last_error = f"MQTT connect refused: {reason_code}"
            self._attempted.set()
            return
        self.last_error = ""
        self._connected.set()  # before reading the configs: one registered meanwhile is published by its setter
        client.publish(f"{self.prefix}/status", b"online", qos=self.qos, retain=True)
        with self._lock:
            announcements = [message for messages in self._announcements.values() for message in messages]
        for message in announcements:
            client.publish(message.topic, message.payload, qos=self.qos, retain=message.retain)
        self._attempted.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._connected.clear()
        self.last_error = f"MQTT disconnected: {reason_code}"
        self._attempted.set()

    def _on_connect_fail(self, client, userdata) -> None:
        self._connected.clear()
        self.last_error = "MQTT broker not reachable"
        self._attempted.set()

    # senders
    def set_announcements(self, key: str, messages: list[Message], *, publish: bool = True) -> None:
        """Remember the retained configs republished on every connect under ``key``; publish them now if connected."""
        with self._lock:
            changed = self._announcements.get(key) != messages
            self._announcements[key] = messages
        if publish and changed and self._connected.is_set():
            for message in messages:
                self.client.publish(message.topic, message.payload, qos=self.qos, retain=message.retain)

    def drop_announcements(self, key: str) -> bool:
        """Forget the configs registered under ``key`` (not republished on the next connect); True if there were."""
        with self._lock:
            return self._announcements.pop(key, None) is not None

    def wait_connected(self, timeout: float) -> bool:
        if self._connected.is_set():
            return True
        self._attempted.wait(timeout)
        return self._connected.is_set()

    def publish(self, messages: list[Message], *, qos: int, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> None:
        """Publish and wait until each message is out (qos 0) or acknowledged (qos 1/2)."""
        if not self.client.is_connected() or not self._connected.is_set():
            raise NotConnected(self.last_error or "MQTT broker not connected")
        deadline = time.monotonic() + timeout
        infos = [self.client.publish(m.topic, m.payload, qos=qos, retain=m.retain) for m in messages]
        for info in infos:
            if info.rc == mqtt.MQTT_ERR_NO_CONN:
                raise NotConnected("MQTT broker not connected")
            try:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.01))
            except (RuntimeError, ValueError) as error:
                raise NotConnected(str(error)) from None
            if not info.is_published():
                raise TimeoutError(f"MQTT publish to {messages[infos.index(info)].topic} not acknowledged in time")

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


_connections: dict[tuple[str, str, int], BrokerConnection] = {}
_connections_lock = threading.Lock()


def connection_for(topics: ChannelTopics) -> BrokerConnection:
    """This process's client for the channel's broker, prefix and QoS, created and started on first use."""
    key = (topics.broker_url, topics.prefix, topics.qos)
    with _connections_lock:
        connection = _connections.get(key)
        if connection is None:
            suffix = f"-{len(_connections)}" if _connections else ""
            client_id = f"{settings.MQTT_CLIENT_ID}-{os.getpid()}{suffix}"
            connection = BrokerConnection(topics.broker_url, topics.prefix, client_id, qos=topics.qos)
            _connections[key] = connection
        return connection


def announcements_drop(key: str) -> int:
    """Forget the announcements registered under ``key`` on every connection of this process; returns on how many."""
    with _connections_lock:
        connections = list(_connections.values())
    return sum(connection.drop_announcements(key) for connection in connections)


def connections_close() -> None:
    """Disconnect every client of this process (clean shutdown: the broker keeps ``online`` until the next will)."""
    with _connections_lock:
        connections = list(_connections.values())
        _connections.clear()
    for connection in connections:
        try:
            connection.close()
        except Exception:
            logger.debug("closing MQTT client failed", exc_info=True)


def publish_messages(topics: ChannelTopics, messages: list[Message], *, wait: float = CONNECT_WAIT_SECONDS) -> None:
    """Publish on the channel's connection; ``NotConnected`` / ``TimeoutError`` / ``ValueError`` when it cannot."""
    connection = connection_for(topics)
    if not connection.wait_connected(wait):
        raise NotConnected(connection.last_error or "MQTT broker not connected")
    connection.publish(messages, qos=topics.qos)


class MqttTransport(Transport):
    kind = "mqtt"

    def send(self, channel, payload, *, event_type, delivery_id, thumbnail=None) -> SendResult:
        topics = ChannelTopics.of(channel)
        if not topics.broker_url:
            return SendResult(success=False, error="MQTT broker not configured", error_type="not_configured")
        started = time.monotonic()
        try:
            if topics.discovery and event_type != "test":  # a test send announces nothing (§2.8: no side effects)
                from alerts.services.mqtt_publishing import register_discovery

                register_discovery(channel, topics)
            publish_messages(topics, alert_messages(topics, payload))
        except ValueError as error:
            return SendResult(success=False, error=str(error), retryable=False, error_type="invalid_config")
        except NotConnected as error:
            return self._result(started, str(error), "connection_error")
        except TimeoutError as error:
            return self._result(started, str(error), "timeout")
        except OSError as error:
            return self._result(started, f"MQTT error: {error}", "connection_error")
        latency = (time.monotonic() - started) * 1000
        return SendResult(success=True, message=f"published to {topics.prefix}/alerts", latency_ms=latency)

    @staticmethod
    def _result(started: float, error: str, error_type: str) -> SendResult:
        latency = (time.monotonic() - started) * 1000
        return SendResult(success=False, error=error, retryable=True, latency_ms=latency, error_type=error_type)


TRANSPORT = MqttTransport()
