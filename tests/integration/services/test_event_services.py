"""events.services: event_update, event_soft_delete, event_restore against real PostgreSQL and Redis
(CONTRACT §2.5, §0.7, §3.6, §6.8)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from events import selectors
from events.models import Event
from events.services import event_restore, event_soft_delete, event_update
from hsi.api.errors import InvalidState, NotFound, VersionConflict
from hsi.api.pagination import PageRequest
from system.models import AuditLog
from system.services import Actor
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db

ACTOR = Actor(name="api_key:tester", ip_address="192.0.2.7", user_agent="pytest", request_id="req-42")
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def audit_rows(event: Event) -> list[AuditLog]:
    return list(AuditLog.objects.filter(resource_type="event", resource_id=str(event.id)).order_by("id"))


# --- event_update -------------------------------------------------------------------------------------------------


def test_review_locks_bumps_version_audits_and_broadcasts_after_commit(
    django_capture_on_commit_callbacks, events_stream
):
    event = EventFactory(risk_score=45, risk_level="medium", notes="n")

    with django_capture_on_commit_callbacks() as callbacks:
        updated = event_update(event.id, changes={"reviewed": True}, actor=ACTOR, expected_version=1)
    with pytest.raises(asyncio.TimeoutError):
        events_stream.next(timeout=0.2)  # nothing leaves before the commit
    for callback in callbacks:
        callback()

    message = events_stream.next()
    assert message["type"] == "event.updated"
    assert message["data"] == {
        "id": event.id,
        "camera_id": event.camera_id,
        "changed_fields": ["reviewed"],
        "reviewed": True,
        "flagged": False,
        "notes": "n",
        "risk_score": 45,
        "risk_level": "medium",
        "version": 2,
    }
    stored = Event.objects.get(pk=event.id)
    assert stored.reviewed and stored.reviewed_at is not None and stored.version == 2
    assert updated.version == 2
    [audit] = audit_rows(event)
    assert (audit.action, audit.status, audit.actor) == ("event_reviewed", "success", "api_key:tester")
    assert (audit.ip_address, audit.user_agent, audit.request_id) == ("192.0.2.7", "pytest", "req-42")
    assert audit.details["changes"]["reviewed"] == {"old": False, "new": True}
    assert audit.details["changes"]["reviewed_at"]["old"] is None


def test_review_and_notes_together_write_two_audit_rows_and_one_broadcast(
    django_capture_on_commit_callbacks, events_stream
):
    event = EventFactory()

    with django_capture_on_commit_callbacks(execute=True):
        event_update(event.id, changes={"notes": "garage door open", "reviewed": True}, actor=ACTOR)

    assert [row.action for row in audit_rows(event)] == ["event_reviewed", "event_updated"]
    assert audit_rows(event)[1].details["changes"] == {"notes": {"old": None, "new": "garage door open"}}
    message = events_stream.next()
    assert message["data"]["changed_fields"] == ["reviewed", "notes"] and message["data"]["version"] == 2
    assert Event.objects.get(pk=event.id).version == 2


def test_unreview_clears_reviewed_at():
    event = EventFactory(reviewed=True, reviewed_at=T0)

    event_update(event.id, changes={"reviewed": False}, actor=ACTOR)

    stored = Event.objects.get(pk=event.id)
    assert stored.reviewed is False and stored.reviewed_at is None
    assert [row.action for row in audit_rows(event)] == ["event_unreviewed"]


@pytest.mark.parametrize("changes", [{}, {"reviewed": False, "flagged": False, "notes": None, "snooze_until": None}])
def test_no_effective_change_is_a_no_op(django_capture_on_commit_callbacks, changes):
    event = EventFactory()
    updated_at = Event.objects.get(pk=event.id).updated_at

    with django_capture_on_commit_callbacks() as callbacks:
        result = event_update(event.id, changes=changes, actor=ACTOR, expected_version=1)

    assert result.version == 1
    stored = Event.objects.get(pk=event.id)
    assert stored.version == 1 and stored.updated_at == updated_at
    assert audit_rows(event) == [] and callbacks == []


def test_same_snooze_instant_in_another_offset_is_no_change():
    event = EventFactory(snooze_until=T0)
    event_update(event.id, changes={"snooze_until": T0.astimezone(dt.timezone(dt.timedelta(hours=2)))}, actor=ACTOR)
    assert Event.objects.get(pk=event.id).version == 1


def test_stale_version_raises_and_changes_nothing():
    event = EventFactory(version=7)

    with pytest.raises(VersionConflict) as raised:
        event_update(event.id, changes={"flagged": True}, actor=ACTOR, expected_version=6)

    assert raised.value.extensions == {"current_version": 7}
    stored = Event.objects.get(pk=event.id)
    assert stored.flagged is False and stored.version == 7
    assert audit_rows(event) == []


def test_update_of_deleted_event_is_invalid_state():
    event = EventFactory(deleted_at=T0)
    with pytest.raises(InvalidState):
        event_update(event.id, changes={"flagged": True}, actor=ACTOR)
    assert Event.objects.get(pk=event.id).flagged is False


def test_update_of_unknown_event_is_not_found():
    with pytest.raises(NotFound):
        event_update(123456789, changes={"flagged": True}, actor=ACTOR)


def test_update_rejects_fields_it_does_not_own():
    event = EventFactory()
    with pytest.raises(ValueError, match="risk_score"):
        event_update(event.id, changes={"risk_score": 99}, actor=ACTOR)


@pytest.mark.django_db(transaction=True)  # committed writes: the cached total is in play
def test_update_invalidates_cached_totals():
    EventFactory(flagged=False)

    def flagged_only(queryset):
        return queryset.filter(flagged=True)

    page = PageRequest(limit=10, offset=0)
    assert selectors.event_page(page, refine=flagged_only)["pagination"]["total"] == 0
    event = Event.objects.get()

    event_update(event.id, changes={"flagged": True}, actor=ACTOR)

    assert selectors.event_page(page, refine=flagged_only)["pagination"]["total"] == 1


# --- event_soft_delete / event_restore ----------------------------------------------------------------------------


def test_soft_delete_sets_deleted_at_and_broadcasts(django_capture_on_commit_callbacks, events_stream):
    event = EventFactory(version=2)

    with django_capture_on_commit_callbacks(execute=True):
        deleted = event_soft_delete(event.id, actor=ACTOR)

    assert deleted.deleted_at is not None and deleted.version == 3
    message = events_stream.next()
    assert message["type"] == "event.deleted"
    assert message["data"] == {
        "id": event.id,
        "camera_id": event.camera_id,
        "deleted_at": selectors.iso(deleted.deleted_at),
        "version": 3,
    }
    assert message["data"]["deleted_at"].endswith("Z")
    [audit] = audit_rows(event)
    assert (audit.action, audit.status) == ("event_deleted", "success")


def test_soft_delete_twice_is_refused_and_audited_as_failure(django_capture_on_commit_callbacks):
    event = EventFactory(deleted_at=T0, version=2)

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(InvalidState, match="already deleted"):
        event_soft_delete(event.id, actor=ACTOR)

    stored = Event.objects.get(pk=event.id)
    assert stored.deleted_at == T0 and stored.version == 2
    [audit] = audit_rows(event)
    assert (audit.action, audit.status, audit.actor) == ("event_deleted", "failure", "api_key:tester")
    assert audit.details == {"reason": "Event is already deleted"}
    assert callbacks == []


def test_restore_clears_deleted_at_and_broadcasts(django_capture_on_commit_callbacks, events_stream):
    event = EventFactory(deleted_at=T0, version=2)

    with django_capture_on_commit_callbacks(execute=True):
        restored = event_restore(event.id, actor=ACTOR)

    assert restored.deleted_at is None and restored.version == 3
    message = events_stream.next()
    assert message["type"] == "event.restored"
    assert message["data"] == {"id": event.id, "camera_id": event.camera_id, "deleted_at": None, "version": 3}
    [audit] = audit_rows(event)
    assert (audit.action, audit.status) == ("event_restored", "success")
    assert audit.details["changes"]["deleted_at"] == {"old": "2024-05-01T12:00:00Z", "new": None}


def test_restore_of_live_event_is_refused_and_audited_as_failure():
    event = EventFactory()

    with pytest.raises(InvalidState, match="not deleted"):
        event_restore(event.id, actor=ACTOR)

    assert Event.objects.get(pk=event.id).version == 1
    [audit] = audit_rows(event)
    assert (audit.action, audit.status) == ("event_restored", "failure")


@pytest.mark.django_db(transaction=True)
def test_delete_and_restore_keep_the_trash_and_list_totals_exact():
    event = EventFactory()
    page = PageRequest(limit=10, offset=0)
    assert selectors.deleted_event_page(page)["pagination"]["total"] == 0
    assert selectors.event_page(page)["pagination"]["total"] == 1

    event_soft_delete(event.id, actor=ACTOR)
    assert selectors.deleted_event_page(page)["pagination"]["total"] == 1
    assert selectors.event_page(page)["pagination"]["total"] == 0

    event_restore(event.id, actor=ACTOR)
    assert selectors.deleted_event_page(page)["pagination"]["total"] == 0
    assert selectors.event_page(page)["pagination"]["total"] == 1
