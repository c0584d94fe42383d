"""MQTT messages that are not deliveries (CONTRACT §5.9): Home Assistant discovery, camera status, per-event topics.

These are best-effort (no outbox row): a broker that is down misses them, and the retained ones are published again
on the next change or, for discovery, on every reconnect.
"""

from __future__ import annotations

import logging

from alerts.models import ChannelKind, NotificationChannel
from alerts.transports import mqtt

logger = logging.getLogger("hsi.alerts.mqtt")


def _enabled_mqtt_channels() -> list[NotificationChannel]:
    return list(NotificationChannel.objects.filter(kind=ChannelKind.MQTT, enabled=True))


def _discovery_for_cameras(topics: mqtt.ChannelTopics, cameras) -> list[mqtt.Message]:
    return [message for camera_id, name in cameras for message in mqtt.discovery_messages(topics, camera_id, name)]


def _announcement_key(channel_id) -> str:
    return f"discovery:{channel_id}"


def register_discovery(channel, topics: mqtt.ChannelTopics | None = None) -> None:
    """Register the channel's discovery configs for every camera on its connection (published on each connect and
    now when they changed). A disabled channel, or one without ``discovery``, registers nothing."""
    from cameras.models import Camera

    topics = topics or mqtt.ChannelTopics.of(channel)
    if not channel.enabled or not topics.broker_url or not topics.discovery:
        return
    cameras = list(Camera.objects.order_by("id").values_list("id", "name"))
    mqtt.connection_for(topics).set_announcements(
        _announcement_key(channel.id), _discovery_for_cameras(topics, cameras)
    )


def channel_announcements_drop(channel_id) -> None:
    """Remove the channel's registered discovery configs from every connection of this process, so nothing is
    republished on reconnect (call when a channel is updated or deleted; the next publish of a channel that still
    has ``discovery`` registers them again)."""
    mqtt.announcements_drop(_announcement_key(channel_id))


def _publish(channel, messages: list[mqtt.Message], what: str, *, register: bool = True) -> bool:
    """Publish best-effort; first register the channel's discovery configs (``register``), so a connection opened
    here announces them on connect."""
    topics = mqtt.ChannelTopics.of(channel)
    if not topics.broker_url:
        return False
    try:
        if register and topics.discovery:
            register_discovery(channel, topics)
        mqtt.publish_messages(topics, messages)
        return True
    except (mqtt.NotConnected, TimeoutError, ValueError, OSError) as error:
        logger.warning("MQTT %s on channel %s not published: %s", what, channel.name, error)
        return False


def mqtt_publish_event(event_id: int) -> int:
    """Publish ``<prefix>/events`` and the camera's ``risk_score`` for every enabled MQTT channel with
    ``publish_events``; returns how many channels got them. Call once per new event (after commit)."""
    from events.selectors import event_list_item

    channels = [channel for channel in _enabled_mqtt_channels() if channel.publish_events]
    if not channels:
        return 0
    item = event_list_item(event_id)
    if item is None:
        return 0
    published = 0
    for channel in channels:
        topics = mqtt.ChannelTopics.of(channel)
        published += _publish(channel, mqtt.event_messages(topics, item), "event")
    return published


def mqtt_publish_camera_status(camera_id: str, status: str) -> int:
    """The retained ``<prefix>/cameras/<id>/status`` on every enabled MQTT channel; returns how many got it."""
    published = 0
    for channel in _enabled_mqtt_channels():
        topics = mqtt.ChannelTopics.of(channel)
        published += _publish(channel, [mqtt.camera_status_message(topics, camera_id, status)], "camera status")
    return published


def mqtt_publish_discovery(camera_id: str | None = None) -> int:
    """Refresh discovery configs on every enabled MQTT channel with ``discovery`` (camera created or renamed)."""
    return len(_discovery_channels_registered())


def mqtt_remove_discovery(camera_id: str) -> int:
    """Empty retained payloads on a deleted camera's discovery topics, and drop it from the connect-time configs."""
    published = 0
    for channel, topics in _discovery_channels_registered():
        removal = mqtt.discovery_removal_messages(topics, camera_id)
        published += _publish(channel, removal, "discovery removal", register=False)
    return published


def _discovery_channels_registered() -> list[tuple[NotificationChannel, mqtt.ChannelTopics]]:
    """Every enabled MQTT channel with a broker and ``discovery``, its discovery configs (re)registered."""
    registered = []
    for channel in _enabled_mqtt_channels():
        topics = mqtt.ChannelTopics.of(channel)
        if topics.broker_url and topics.discovery:
            register_discovery(channel, topics)
            registered.append((channel, topics))
    return registered


# --- signal receivers (connected in ``AlertsConfig.ready``) -------------------------------------------------------


def _dispatch_if_mqtt(task_name: str, *args, publish_events: bool = False) -> None:
    """Dispatch ``task_name`` only when an enabled MQTT channel (that publishes events, with ``publish_events``)
    exists (one cheap query otherwise)."""
    from hsi import dispatch

    channels = NotificationChannel.objects.filter(kind=ChannelKind.MQTT, enabled=True)
    if publish_events:
        channels = channels.filter(publish_events=True)
    try:
        if channels.exists():
            dispatch.send(task_name, *args)
    except Exception:
        logger.warning("Could not dispatch %s%r", task_name, args, exc_info=True)


def event_publication_dispatch(event_id: int) -> None:
    """A new event → ``alerts.mqtt_publish_event`` on its own task, when an MQTT channel publishes events."""
    _dispatch_if_mqtt("alerts.mqtt_publish_event", event_id, publish_events=True)


def on_camera_status_changed(sender=None, *, camera_id: str, status: str, **kwargs) -> None:
    """``cameras.services.camera_status_changed`` (sent after commit) → the MQTT camera status topic."""
    _dispatch_if_mqtt("alerts.mqtt_camera_status", camera_id, status)


def on_camera_saved(sender=None, *, instance, created: bool = False, update_fields=None, **kwargs) -> None:
    """Camera created or renamed → discovery configs refreshed after commit."""
    from django.db import transaction

    if not created and update_fields is not None and "name" not in update_fields:
        return
    if not _enabled_mqtt_channels():
        return  # nothing to announce: no after-commit work either (a transaction with none counts as read-only)
    transaction.on_commit(lambda: _dispatch_if_mqtt("alerts.mqtt_discovery"), robust=True)


def on_camera_deleted(sender=None, *, camera_id: str, **kwargs) -> None:
    """``cameras.services.camera_deleted`` (sent after commit) → the camera's discovery topics cleared."""
    _dispatch_if_mqtt("alerts.mqtt_discovery", camera_id)
