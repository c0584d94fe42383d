"""The Django admin at /admin/ (CONTRACT §8.2), driven like a browser with a logged-in superuser."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.models import NotificationChannel, NotificationPreference
from cameras.models import Camera, Zone
from events.models import Event
from system.auth import hash_key
from system.models import ApiKey, AuditLog
from tests.factories import (
    AlertFactory,
    AlertRuleFactory,
    ApiKeyFactory,
    AuditLogFactory,
    BatchFactory,
    CameraFactory,
    DeliveryFactory,
    DetectionFactory,
    EntityFactory,
    EventAuditFactory,
    EventFactory,
    EventFeedbackFactory,
    FailedJobFactory,
    GPUStatFactory,
    IngestedFileFactory,
    LogEntryFactory,
    NotificationChannelFactory,
    QuietHoursFactory,
    ZoneFactory,
)

pytestmark = pytest.mark.django_db

OUR_APPS = ("cameras", "events", "alerts", "pipeline", "system")
ADDABLE = {
    "cameras.camera",
    "cameras.zone",
    "alerts.alertrule",
    "alerts.notificationchannel",
    "alerts.notificationpreference",
    "alerts.quiethours",
    "system.apikey",
}
READ_ONLY = {"system.auditlog", "system.logentry", "system.gpustat", "events.eventaudit"}


class FormParser(HTMLParser):
    """The fields a browser would submit from the page's main form (inputs, checked boxes, selects, textareas)."""

    def __init__(self):
        super().__init__()
        self.data: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_value: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "button", "file"):
            if attributes.get("type") in ("checkbox", "radio"):
                if "checked" in attributes:
                    self.data.append((name, attributes.get("value") or "on"))
            else:
                self.data.append((name, attributes.get("value") or ""))
        elif tag == "select" and name:
            self._select, self._select_value = name, None
        elif tag == "option" and self._select and ("selected" in attributes or self._select_value is None):
            if "selected" in attributes or self._select_value is None:
                self._select_value = attributes.get("value", "")
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            self.data.append((self._select, self._select_value or ""))
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data.append((self._textarea, self._text.strip("\n")))
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self._text += data


def form_data(html: str, **overrides) -> dict:
    parser = FormParser()
    parser.feed(html)
    data: dict = {}
    for name, value in parser.data:
        if name in ("action", "_selected_action", "select_across", "index", "q"):
            continue
        data.setdefault(name, value)
    for name, value in overrides.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("alice", "alice@example.com", "pw-not-used")
    client.force_login(user)
    return client


def url(model, view: str, *args) -> str:
    """The admin URL, with the pk quoted the way the admin's own links quote it (``_`` is its escape)."""
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=[quote(a) for a in args])


def one_of_everything():
    camera = CameraFactory()
    ZoneFactory(camera=camera)
    batch = BatchFactory(camera=camera)
    source = IngestedFileFactory(camera=camera)
    detection = DetectionFactory(camera=camera, batch=batch, source_file=source)
    event = EventFactory(camera=camera, batch=batch, detections=[detection])
    EventAuditFactory(event=event)
    EventFeedbackFactory(event=event)
    EntityFactory(primary_detection=detection)
    alert = AlertFactory(event=event, camera=camera)
    DeliveryFactory(alert=alert)
    QuietHoursFactory(camera=camera)
    FailedJobFactory()
    AuditLogFactory()
    LogEntryFactory()
    GPUStatFactory()
    ApiKeyFactory()
    from events.models import ActivityBaseline, ClassBaseline

    ActivityBaseline.objects.create(camera=camera, day_of_week=0, hour=1, avg_count=2.0, sample_count=3)
    ClassBaseline.objects.create(camera=camera, object_class="person", hour=1, frequency=0.5, sample_count=3)


def our_models():
    return sorted((m for m in admin.site._registry if m._meta.app_label in OUR_APPS), key=lambda m: m._meta.label_lower)


def test_every_model_of_every_app_is_registered():
    from django.apps import apps

    ours = {m for app in OUR_APPS for m in apps.get_app_config(app).get_models()}
    assert ours - set(admin.site._registry) == set()


def test_every_changelist_and_change_page_renders(staff):
    one_of_everything()

    for model in our_models():
        assert staff.get(url(model, "changelist")).status_code == 200, model
        obj = model._default_manager.first()
        assert obj is not None, model
        assert staff.get(url(model, "change", obj.pk)).status_code == 200, model


def test_add_pages_exist_exactly_for_configuration(staff):
    for model in our_models():
        status = staff.get(url(model, "add")).status_code
        assert status == (200 if model._meta.label_lower in ADDABLE else 403), model


def test_read_only_records_cannot_be_changed_or_deleted(staff):
    row = AuditLogFactory(action="camera_created")

    change = staff.post(url(AuditLog, "change", row.pk), {"action": "tampered"})
    delete = staff.post(url(AuditLog, "delete", row.pk), {"post": "yes"})

    assert change.status_code == 403 and delete.status_code == 403
    row.refresh_from_db()
    assert row.action == "camera_created"


def test_camera_page_edits_zones_inline(staff):
    camera = CameraFactory(name="Front Door")
    ZoneFactory(camera=camera, name="Porch steps")

    page = staff.get(url(Camera, "change", camera.pk)).content.decode()

    assert "Porch steps" in page and 'name="zones-TOTAL_FORMS"' in page and 'value="1"' in page


def test_adding_a_camera_with_a_zone_goes_through_the_services(staff):
    page = staff.get(url(Camera, "add")).content.decode()
    data = form_data(
        page,
        id="",
        name="Back Yard",
        folder_path="back_yard",
        **{
            "zones-TOTAL_FORMS": "1",
            "zones-0-name": "Gate",
            "zones-0-zone_type": "entry_point",
            "zones-0-shape": "rectangle",
            "zones-0-coordinates": "[[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]]",
            "zones-0-color": "#FF0000",
            "zones-0-enabled": "on",
            "zones-0-priority": "10",
        },
    )

    response = staff.post(url(Camera, "add"), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    camera = Camera.objects.get(id="back_yard")
    assert camera.name == "Back Yard" and camera.status_changed_at is not None
    zone = Zone.objects.get(camera=camera)
    assert zone.name == "Gate" and zone.coordinates == [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]
    actions = set(AuditLog.objects.filter(actor="user:alice").values_list("action", "resource_id"))
    assert actions == {("camera_created", "back_yard"), ("zone_created", str(zone.id))}


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"id": "Bad Id!"}, "id"),
        ({"folder_path": "../outside"}, "folder_path"),
        ({"zones-0-coordinates": "[[0, 0], [1, 1]]"}, "coordinates"),
        ({"zones-0-color": "red"}, "color"),
    ],
)
def test_invalid_camera_or_zone_input_is_a_form_error(staff, overrides, field):
    page = staff.get(url(Camera, "add")).content.decode()
    base = {
        "name": "Garage",
        "folder_path": "garage",
        "zones-TOTAL_FORMS": "1",
        "zones-0-name": "Door",
        "zones-0-zone_type": "entry_point",
        "zones-0-shape": "rectangle",
        "zones-0-coordinates": "[[0, 0], [0.5, 0], [0.5, 0.5]]",
        "zones-0-color": "#00FF00",
        "zones-0-priority": "0",
    }

    response = staff.post(url(Camera, "add"), form_data(page, **{**base, **overrides}))

    assert response.status_code == 200  # the form is shown again with its errors
    camera_errors = response.context["adminform"].form.errors
    zone_errors = [name for errors in response.context["inline_admin_formsets"][0].formset.errors for name in errors]
    assert field in [*camera_errors, *zone_errors]
    assert not Camera.objects.exists() and not AuditLog.objects.exists()


def test_changing_a_camera_records_the_changes(staff):
    camera = CameraFactory(name="Old", status="online")
    page = staff.get(url(Camera, "change", camera.pk)).content.decode()

    response = staff.post(url(Camera, "change", camera.pk), form_data(page, name="New", status="offline"))

    assert response.status_code == 302
    camera.refresh_from_db()
    assert camera.name == "New" and camera.status == "offline" and camera.status_changed_at is not None
    row = AuditLog.objects.get(action="camera_updated")
    assert row.actor == "user:alice" and row.details["changes"]["name"] == {"old": "Old", "new": "New"}


def run_action(client, action: str, events) -> object:
    return client.post(
        url(Event, "changelist"), {"action": action, "_selected_action": [str(e.pk) for e in events], "index": "0"}
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_mark_reviewed_action_reviews_through_the_event_service(staff):
    events = EventFactory.create_batch(2)

    response = run_action(staff, "mark_reviewed", events)

    assert response.status_code == 302
    for event in Event.objects.all():
        assert event.reviewed and event.reviewed_at is not None and event.version == 2
    rows = AuditLog.objects.filter(action="event_reviewed")
    assert rows.count() == 2 and set(rows.values_list("actor", flat=True)) == {"user:alice"}
    assert "2 event(s) marked reviewed." in messages_of(response)


def test_soft_delete_and_restore_actions(staff):
    event = EventFactory()

    run_action(staff, "soft_delete", [event])
    event.refresh_from_db()
    assert event.deleted_at is not None

    run_action(staff, "restore", [event])
    event.refresh_from_db()
    assert event.deleted_at is None
    assert list(AuditLog.objects.order_by("id").values_list("action", "actor")) == [
        ("event_deleted", "user:alice"),
        ("event_restored", "user:alice"),
    ]


def test_a_refused_action_is_reported_and_audited_as_a_failure(staff):
    live, trashed = EventFactory(), EventFactory(deleted_at=timezone.now())

    response = run_action(staff, "restore", [live, trashed])

    assert any("Not changed" in m and str(live.pk) in m for m in messages_of(response))
    assert "1 event(s) restored." in messages_of(response)
    failure = AuditLog.objects.get(action="event_restored", status="failure")
    assert failure.resource_id == str(live.pk) and failure.actor == "user:alice"


def test_editing_notes_on_the_event_page_uses_the_event_service(staff):
    event = EventFactory(summary="1 person detected")
    page = staff.get(url(Event, "change", event.pk)).content.decode()

    response = staff.post(url(Event, "change", event.pk), form_data(page, notes="Postman"))

    assert response.status_code == 302
    event.refresh_from_db()
    assert event.notes == "Postman" and event.version == 2 and event.summary == "1 person detected"
    row = AuditLog.objects.get(action="event_updated")
    assert row.actor == "user:alice" and row.details["changes"]["notes"] == {"old": None, "new": "Postman"}


def test_event_page_lists_its_detections_with_links(staff):
    camera = CameraFactory()
    detection = DetectionFactory(camera=camera, object_type="dog")
    event = EventFactory(camera=camera, detections=[detection])

    page = staff.get(url(Event, "change", event.pk)).content.decode()

    assert url(type(detection), "change", detection.pk) in page and "dog" in page


def test_event_filters_and_search_work(staff):
    EventFactory(risk_level="high", risk_score=70, summary="A fox in the garden")
    EventFactory(risk_level="low", summary="A car passed")

    by_level = staff.get(url(Event, "changelist"), {"risk_level__exact": "high"})
    by_text = staff.get(url(Event, "changelist"), {"q": "fox"})
    in_trash = staff.get(url(Event, "changelist"), {"deleted": "yes"})

    assert len(by_level.context["cl"].result_list) == 1
    assert [e.summary for e in by_text.context["cl"].result_list] == ["A fox in the garden"]
    assert len(in_trash.context["cl"].result_list) == 0


@pytest.mark.parametrize("model_url", ["events.event", "events.detection", "alerts.alert", "alerts.delivery"])
def test_changelists_of_large_tables_do_not_query_per_row(staff, model_url):
    from django.apps import apps

    model = apps.get_model(model_url)

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert staff.get(url(model, "changelist")).status_code == 200
        return len(queries)

    DeliveryFactory()
    few = page_queries()
    for _ in range(10):
        DeliveryFactory(alert=AlertFactory(event=EventFactory(detections=[DetectionFactory()])))
    assert page_queries() == few


def test_channel_secret_is_write_only(staff):
    channel = NotificationChannelFactory(secret="s3cr3t-hmac-key")
    change_url = url(NotificationChannel, "change", channel.pk)

    page = staff.get(change_url).content.decode()
    assert "s3cr3t-hmac-key" not in page

    staff.post(change_url, form_data(page, enabled=None, secret=""))
    channel.refresh_from_db()
    assert channel.secret == "s3cr3t-hmac-key" and channel.enabled is False

    staff.post(change_url, form_data(staff.get(change_url).content.decode(), secret="n3w-key"))
    channel.refresh_from_db()
    assert channel.secret == "n3w-key"

    staff.post(change_url, form_data(staff.get(change_url).content.decode(), clear_secret="on"))
    channel.refresh_from_db()
    assert channel.secret == ""
    rows = AuditLog.objects.filter(action="channel_updated")
    assert all("s3cr3t" not in str(row.details) and "n3w" not in str(row.details) for row in rows)
    assert rows.filter(details__changes__secret={"old": "***", "new": "***"}).exists()


def test_channel_config_is_checked_for_its_kind(staff):
    page = staff.get(url(NotificationChannel, "add")).content.decode()

    response = staff.post(
        url(NotificationChannel, "add"),
        form_data(page, name="Hook", kind="webhook", config='{"url": "ftp://nope"}', min_severity="low"),
    )

    assert response.status_code == 200 and "config" in response.context["adminform"].form.errors
    assert not NotificationChannel.objects.exists()


def test_api_key_is_created_by_the_service_and_shown_once(staff):
    page = staff.get(url(ApiKey, "add")).content.decode()

    response = staff.post(url(ApiKey, "add"), form_data(page, name="dashboard", expires_days="30"), follow=True)

    assert response.redirect_chain and response.status_code == 200
    key = ApiKey.objects.get(name="dashboard")
    shown = [str(m) for m in response.context["messages"] if "created:" in str(m)]
    assert len(shown) == 1
    plaintext = shown[0].split("created: ")[1].split(" ")[0]
    assert plaintext.startswith("hsi_") and hash_key(plaintext) == key.key_hash
    assert key.expires_at - timezone.now() > dt.timedelta(days=29)
    assert AuditLog.objects.get(action="api_key_created").actor == "user:alice"
    for page_url in (url(ApiKey, "change", key.pk), url(ApiKey, "changelist")):
        later_page = staff.get(page_url).content.decode()
        assert key.key_hash not in later_page and plaintext not in later_page


def test_api_key_revoke_action(staff):
    key = ApiKeyFactory(name="old-bot")

    staff.post(url(ApiKey, "changelist"), {"action": "revoke_keys", "_selected_action": [str(key.pk)], "index": "0"})

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditLog.objects.get(action="api_key_revoked").actor == "user:alice"


def test_entity_trust_and_label_are_editable_and_audited(staff):
    from events.models import Entity

    entity = EntityFactory(label="", trust_status="unknown")
    change_url = url(Entity, "change", entity.pk)

    response = staff.post(
        change_url, form_data(staff.get(change_url).content.decode(), label="Mail carrier", trust_status="trusted")
    )

    assert response.status_code == 302
    entity.refresh_from_db()
    assert entity.label == "Mail carrier" and entity.trust_status == "trusted"
    row = AuditLog.objects.get(action="entity_updated")
    assert row.actor == "user:alice" and row.details["changes"]["trust_status"] == {"old": "unknown", "new": "trusted"}


def test_rule_form_rejects_unknown_template_variables(staff):
    from alerts.models import AlertRule

    page = staff.get(url(AlertRule, "add")).content.decode()

    response = staff.post(
        url(AlertRule, "add"),
        form_data(page, name="Night", dedup_key_template="{camera_id}:{nope}", cooldown_seconds="300"),
    )

    assert response.status_code == 200 and "dedup_key_template" in response.context["adminform"].form.errors
    assert not AlertRule.objects.exists()


def test_rule_saved_in_the_admin_is_audited(staff):
    from alerts.models import AlertRule

    rule = AlertRuleFactory(name="Person at night", risk_threshold=50)
    change_url = url(AlertRule, "change", rule.pk)

    staff.post(
        change_url,
        form_data(staff.get(change_url).content.decode(), risk_threshold="70", object_types='["Person", "person"]'),
    )

    rule.refresh_from_db()
    assert rule.risk_threshold == 70 and rule.object_types == ["person"]
    row = AuditLog.objects.get(action="rule_updated")
    assert row.resource_id == str(rule.pk) and row.details["changes"]["risk_threshold"] == {"old": 50, "new": 70}


def test_the_global_notification_preference_cannot_be_deleted(staff):
    preference = NotificationPreference.objects.get(camera__isnull=True)

    response = staff.post(url(NotificationPreference, "delete", preference.pk), {"post": "yes"})

    assert response.status_code == 403 and NotificationPreference.objects.filter(pk=preference.pk).exists()


def test_deleting_a_camera_summarises_the_cascade_and_uses_the_camera_service(staff):
    camera = CameraFactory(name="Shed")
    detections = [DetectionFactory(camera=camera) for _ in range(3)]
    EventFactory(camera=camera, detections=detections)
    delete_url = url(Camera, "delete", camera.pk)

    confirmation = staff.get(delete_url)
    response = staff.post(delete_url, {"post": "yes"})

    assert confirmation.status_code == 200 and not confirmation.context["perms_lacking"]
    assert dict(confirmation.context["model_count"])["detections"] == 3
    assert response.status_code == 302
    assert not Camera.objects.filter(pk=camera.pk).exists() and not Event.objects.exists()
    row = AuditLog.objects.get(action="camera_deleted")
    assert row.actor == "user:alice" and row.resource_id == camera.pk


def test_hard_deleting_an_event_keeps_its_detections_and_is_audited(staff):
    from events.models import Detection

    detection = DetectionFactory()
    event = EventFactory(camera=detection.camera, detections=[detection])
    AlertFactory(event=event, camera=event.camera)

    response = staff.post(url(Event, "delete", event.pk), {"post": "yes"})

    assert response.status_code == 302 and not Event.objects.exists()
    assert Detection.objects.filter(pk=detection.pk).exists()
    row = AuditLog.objects.get(action="event_deleted")
    assert row.actor == "user:alice" and row.details["hard"] is True


def test_deleting_a_channel_with_deliveries_is_allowed_and_audited(staff):
    delivery = DeliveryFactory()

    response = staff.post(url(NotificationChannel, "delete", delivery.channel_id), {"post": "yes"})

    assert response.status_code == 302 and not NotificationChannel.objects.exists()
    assert AuditLog.objects.get(action="channel_deleted").actor == "user:alice"


def test_unfiltered_changelists_of_big_tables_use_the_planner_estimate(staff, monkeypatch):
    from system.admin import EstimatedCountPaginator

    EventFactory.create_batch(5, risk_level="low")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_event")
    EventFactory.create_batch(2, risk_level="high", risk_score=70)
    monkeypatch.setattr(EstimatedCountPaginator, "EXACT_COUNT_BELOW", 1)

    unfiltered = staff.get(url(Event, "changelist")).context["cl"]
    filtered = staff.get(url(Event, "changelist"), {"risk_level__exact": "high"}).context["cl"]

    assert unfiltered.result_count == 5  # the estimate from the last ANALYZE, not COUNT(*)
    assert filtered.result_count == 2


def test_camera_ids_that_look_like_admin_escapes_still_open(staff):
    camera = CameraFactory(id="gate_2a", name="Gate 2a", folder_path="gate_2a")
    detection = DetectionFactory(camera=camera)
    event = EventFactory(camera=camera, detections=[detection])

    camera_page = staff.get(url(Camera, "change", camera.pk))
    event_page = staff.get(url(Event, "change", event.pk)).content.decode()

    assert camera_page.status_code == 200 and camera_page.context["original"].pk == "gate_2a"
    assert url(type(detection), "change", detection.pk) in event_page
