"""MQTT deliveries reach a real (fake) MQTT 3.1.1 broker on the right topics with the right retain flags, with
Home Assistant discovery, ``online`` status and the ``offline`` last will (CONTRACT §5.9)."""

from __future__ import annotations

import json

import pytest

from alerts.models import Delivery
from alerts.services.deliveries import deliveries_create_for_alert, delivery_send
from alerts.services.mqtt_publishing import (
    mqtt_publish_camera_status,
    mqtt_publish_event,
    mqtt_remove_discovery,
)
from alerts.transports import mqtt
from tests.factories import CameraFactory, NotificationChannelFactory
from tests.fakes.mqtt_broker import FakeMqttBroker
from tests.integration.alerts.delivery_support import make_alert, outbox_env  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("outbox_env")]


@pytest.fixture
def broker():
    server = FakeMqttBroker().start()
    yield server
    mqtt.connections_close()
    server.stop()


def mqtt_channel(broker, **config):
    fields = {"publish_events": config.pop("publish_events", False)}
    return NotificationChannelFactory(
        kind="mqtt", config={"broker_url": broker.url, "topic_prefix": "home/hsi", **config}, **fields
    )


def test_a_delivery_publishes_the_three_topics_with_their_retain_flags(broker):
    channel = mqtt_channel(broker, qos=1)
    alert = make_alert([channel])
    [delivery_id] = deliveries_create_for_alert(alert.id)

    assert delivery_send(delivery_id) == "sent"

    [on_alerts] = broker.messages_on("home/hsi/alerts")
    [on_camera] = broker.messages_on("home/hsi/cameras/front_door/alert")
    [active] = broker.messages_on("home/hsi/cameras/front_door/alert_active")
    assert (on_alerts.retain, on_alerts.qos) == (False, 1)
    assert (on_camera.retain, on_camera.qos) == (True, 1)
    assert (active.retain, active.payload) == (False, b"ON")
    body = json.loads(on_alerts.payload)
    assert body["alert"]["id"] == str(alert.id)
    assert body["type"] == "alert.created"
    assert on_camera.payload == on_alerts.payload
    assert Delivery.objects.get(pk=delivery_id).alert.status == "delivered"


@pytest.mark.parametrize("qos", [0, 2])
def test_the_channel_qos_is_used_for_every_publish_and_the_last_will(broker, qos):
    # given a channel with a non-default QoS, discovery and event publishing
    channel = mqtt_channel(broker, qos=qos, publish_events=True)
    alert = make_alert([channel])
    [delivery_id] = deliveries_create_for_alert(alert.id)

    # when it delivers an alert and publishes the event
    assert delivery_send(delivery_id) == "sent"
    assert mqtt_publish_event(alert.event_id) == 1
    assert mqtt_publish_camera_status("front_door", "online") == 1
    for topic in (
        "home/hsi/status",
        "home/hsi/alerts",
        "home/hsi/cameras/front_door/alert_active",
        "home/hsi/events",
        "home/hsi/cameras/front_door/risk_score",
        "home/hsi/cameras/front_door/status",
        "homeassistant/binary_sensor/hsi_front_door/alert/config",
        "homeassistant/sensor/hsi_front_door/risk_score/config",
    ):
        broker.wait_for_message(topic)

    # then every message went out with the channel's QoS: alerts, camera topics, status and discovery
    assert {(m.topic.split("/")[0], m.qos) for m in broker.published} == {("home", qos), ("homeassistant", qos)}
    # and so does the last will
    broker.kick()
    will = broker.wait_for(lambda b: next((m for m in b.published if m.will), None))
    assert (will.topic, will.payload, will.qos) == ("home/hsi/status", b"offline", qos)


def test_a_test_send_registers_no_discovery_even_on_a_disabled_channel(broker):
    from alerts.payloads import test_payload
    from alerts.transports import transport_for

    channel = mqtt_channel(broker)
    channel.enabled = False
    channel.save()

    result = transport_for("mqtt").send(channel, test_payload(), event_type="test", delivery_id="test")

    assert result.success
    broker.wait_for_message("home/hsi/alerts")
    broker.wait_for_message("home/hsi/status", b"online")
    assert [m for m in broker.published if m.topic.startswith("homeassistant/")] == []
    assert [m.topic for m in broker.published if "/cameras/" in m.topic] == []


def test_a_dropped_channel_s_discovery_is_not_republished_on_reconnect(broker):
    from alerts.services.mqtt_publishing import channel_announcements_drop

    # given a channel whose discovery configs were announced on its connection
    channel = mqtt_channel(broker)
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)
    assert delivery_send(delivery_id) == "sent"
    broker.wait_for_message("homeassistant/binary_sensor/hsi_front_door/alert/config")

    # when its announcements are dropped (the channel was disabled, deleted or lost discovery) and the client
    # reconnects
    channel_announcements_drop(channel.id)
    broker.kick()
    reconnected = broker.wait_for(lambda b: next((i for i, m in enumerate(b.published) if m.will), None), timeout=5)
    broker.wait_for(
        lambda b: any(m.topic == "home/hsi/status" and m.payload == b"online" for m in b.published[reconnected:]),
        timeout=10,
    )

    # then the discovery configs are not published again
    assert [m.topic for m in broker.published[reconnected:] if m.topic.startswith("homeassistant/")] == []


def test_a_connection_opened_by_status_publishing_announces_discovery_on_connect(broker):
    # given a channel with discovery whose first publish is a camera status (no delivery yet)
    mqtt_channel(broker)
    CameraFactory(id="garage", name="Garage")

    assert mqtt_publish_camera_status("garage", "offline") == 1

    # then the discovery configs were published too
    config = broker.wait_for_message("homeassistant/binary_sensor/hsi_garage/status/config")
    assert config.retain


def test_a_disabled_channel_registers_no_discovery(broker):
    from alerts.services.mqtt_publishing import register_discovery

    channel = mqtt_channel(broker)
    channel.enabled = False
    channel.save()

    register_discovery(channel)
    mqtt.connection_for(mqtt.ChannelTopics.of(channel)).wait_connected(5)
    broker.wait_for_message("home/hsi/status", b"online")

    assert [m for m in broker.published if m.topic.startswith("homeassistant/")] == []


def test_connecting_publishes_online_retained_and_discovery_configs(broker):
    CameraFactory(id="garage", name="Garage")
    channel = mqtt_channel(broker, discovery_prefix="ha", publish_events=True)
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    assert delivery_send(delivery_id) == "sent"

    status = broker.wait_for_message("home/hsi/status", b"online")
    assert status.retain
    config = broker.wait_for_message("ha/binary_sensor/hsi_front_door/alert/config")
    assert config.retain
    assert json.loads(config.payload) == {
        "name": "Alert",
        "unique_id": "hsi_front_door_alert",
        "state_topic": "home/hsi/cameras/front_door/alert_active",
        "payload_on": "ON",
        "payload_off": "OFF",
        "off_delay": 60,
        "device_class": "safety",
        "json_attributes_topic": "home/hsi/cameras/front_door/alert",
        "availability_topic": "home/hsi/status",
        "device": {
            "identifiers": ["hsi_front_door"],
            "name": "Front Door",
            "manufacturer": "HSI",
            "model": "Camera folder",
        },
    }
    connectivity = json.loads(broker.wait_for_message("ha/binary_sensor/hsi_garage/status/config").payload)
    assert (connectivity["device_class"], connectivity["state_topic"]) == (
        "connectivity",
        "home/hsi/cameras/garage/status",
    )
    assert (connectivity["payload_on"], connectivity["payload_off"]) == ("online", "offline")
    risk = json.loads(broker.wait_for_message("ha/sensor/hsi_garage/risk_score/config").payload)
    assert (risk["state_topic"], risk["state_class"]) == ("home/hsi/cameras/garage/risk_score", "measurement")


def test_without_publish_events_there_is_no_risk_score_sensor(broker):
    channel = mqtt_channel(broker)
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)
    assert delivery_send(delivery_id) == "sent"

    broker.wait_for_message("homeassistant/binary_sensor/hsi_front_door/status/config")
    assert broker.messages_on("homeassistant/sensor/hsi_front_door/risk_score/config") == []


def test_the_last_will_says_offline_when_the_client_dies_and_it_comes_back_online(broker):
    channel = mqtt_channel(broker, discovery=False)
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)
    assert delivery_send(delivery_id) == "sent"
    broker.wait_for_message("home/hsi/status", b"online")

    # when the connection dies without a DISCONNECT
    broker.kick()

    # then the broker publishes the client's will, retained
    will = broker.wait_for(lambda b: next((m for m in b.published if m.will), None))
    assert (will.topic, will.payload, will.retain) == ("home/hsi/status", b"offline", True)
    # and the client reconnects by itself and says online again
    after_will = broker.published.index(will) + 1
    broker.wait_for(
        lambda b: any(m.topic == "home/hsi/status" and m.payload == b"online" for m in b.published[after_will:]),
        timeout=10,
    )
    assert broker.retained["home/hsi/status"].payload == b"online"


def test_a_broker_that_is_not_reachable_is_a_retryable_failure(broker):
    url = broker.url
    broker.stop()
    channel = NotificationChannelFactory(kind="mqtt", config={"broker_url": url, "topic_prefix": "down"})
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    assert delivery_send(delivery_id) == "pending"
    assert "not" in Delivery.objects.get(pk=delivery_id).last_error.lower()


def test_camera_status_goes_to_every_enabled_mqtt_channel_retained(broker):
    mqtt_channel(broker, discovery=False)
    NotificationChannelFactory(kind="mqtt", enabled=False, config={"broker_url": broker.url, "topic_prefix": "off"})

    assert mqtt_publish_camera_status("front_door", "offline") == 1

    [message] = broker.messages_on("home/hsi/cameras/front_door/status")
    assert (message.payload, message.retain) == (b"offline", True)
    assert broker.messages_on("off/cameras/front_door/status") == []


def test_events_and_risk_scores_go_to_channels_with_publish_events(broker):
    mqtt_channel(broker, discovery=False, publish_events=True)
    alert = make_alert([])

    assert mqtt_publish_event(alert.event_id) == 1

    [event] = broker.messages_on("home/hsi/events")
    assert json.loads(event.payload)["id"] == alert.event_id
    assert not event.retain
    [risk] = broker.messages_on("home/hsi/cameras/front_door/risk_score")
    assert (risk.payload, risk.retain) == (b"72", True)


def test_deleting_a_camera_clears_its_discovery_topics(broker):
    mqtt_channel(broker)
    CameraFactory(id="garage", name="Garage")

    assert mqtt_remove_discovery("garage") == 1

    cleared = [
        m
        for m in broker.published
        if m.topic.startswith("homeassistant/") and "hsi_garage" in m.topic and not m.payload
    ]
    assert {m.topic for m in cleared} == {
        "homeassistant/binary_sensor/hsi_garage/alert/config",
        "homeassistant/binary_sensor/hsi_garage/status/config",
    }
    assert all(m.retain for m in cleared)


def test_camera_creation_and_status_changes_reach_mqtt_through_signals(broker, django_capture_on_commit_callbacks):
    from cameras.services import camera_create, camera_set_status
    from system.services import Actor

    mqtt_channel(broker)

    with django_capture_on_commit_callbacks(execute=True):
        camera_create(data={"name": "Back Yard", "folder_path": "back_yard"}, actor=Actor.system())
    config = broker.wait_for_message("homeassistant/binary_sensor/hsi_back_yard/alert/config")
    assert json.loads(config.payload)["device"]["name"] == "Back Yard"

    with django_capture_on_commit_callbacks(execute=True):
        camera_set_status("back_yard", "offline", reason="api", actor=Actor.system())
    status = broker.wait_for_message("home/hsi/cameras/back_yard/status", b"offline")
    assert status.retain


def test_deleting_a_camera_through_the_service_clears_its_discovery_topics(broker, django_capture_on_commit_callbacks):
    from cameras.services import camera_create, camera_delete
    from system.services import Actor

    # Given an MQTT channel with discovery and a camera announced on it
    mqtt_channel(broker)
    with django_capture_on_commit_callbacks(execute=True):
        camera_create(data={"name": "Shed", "folder_path": "shed"}, actor=Actor.system())
    broker.wait_for_message("homeassistant/binary_sensor/hsi_shed/alert/config")

    # When the camera is deleted (one raw statement on PostgreSQL: no post_delete)
    with django_capture_on_commit_callbacks(execute=True):
        camera_delete("shed", actor=Actor.system())

    # Then its discovery configs are replaced by empty retained payloads
    cleared = broker.wait_for_message("homeassistant/binary_sensor/hsi_shed/status/config", b"")
    assert cleared.retain


def test_the_alert_evaluation_of_a_new_event_also_publishes_it_to_mqtt_channels_that_publish_events(broker, settings):
    from alerts.tasks import evaluate_event

    # Given an MQTT channel that publishes every event, and tasks run in-process
    settings.CELERY_TASK_ALWAYS_EAGER = True
    mqtt_channel(broker, discovery=False, publish_events=True)
    alert = make_alert([])

    # When the new event's alert evaluation runs
    evaluate_event.apply(args=[alert.event_id])

    # Then the event and the camera's risk score are on the broker
    event = broker.wait_for_message("home/hsi/events")
    assert json.loads(event.payload)["id"] == alert.event_id
    assert broker.wait_for_message("home/hsi/cameras/front_door/risk_score", b"72").retain
