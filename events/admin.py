"""Django admin for detections, events and their analysis records (CONTRACT §8.2).

Event changes go through ``events.services`` (``event_update``, ``event_soft_delete``, ``event_restore``) so the
admin writes the same audit rows, bumps the same ``version`` and sends the same broadcasts as the API, with the
actor ``user:<username>``. Analysis fields are read-only; detections, baselines and AI-audit rows are read-only
records of what the pipeline did.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils.html import format_html

from events.models import (
    ActivityBaseline,
    ClassBaseline,
    Detection,
    Entity,
    Event,
    EventAudit,
    EventDetection,
    EventFeedback,
)
from hsi.api.counts import invalidate_counts
from hsi.api.errors import ApiError
from system.admin import AuditedAdmin, CascadeSummaryDeleteMixin, EstimatedCountPaginator, ReadOnlyAdmin, admin_actor
from system.services import audit_record

EVENT_EDITABLE_FIELDS = ("reviewed", "flagged", "notes", "snooze_until")


def _admin_link(obj, label: str | None = None) -> str:
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[quote(obj.pk)])
    return format_html('<a href="{}">{}</a>', url, label or str(obj))


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return (("no", "Not deleted"), ("yes", "In trash"))

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class EventDetectionInline(admin.TabularInline):
    """The event's detections, read-only, each linking to its detection page."""

    model = EventDetection
    extra = 0
    can_delete = False
    fields = ("detection_link", "object_type", "confidence", "detected_at", "bbox")
    readonly_fields = fields
    raw_id_fields = ("detection",)
    verbose_name = "detection"
    verbose_name_plural = "detections"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("detection").order_by("detection__detected_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="detection")
    def detection_link(self, link: EventDetection) -> str:
        return _admin_link(link.detection, f"Detection {link.detection_id}")

    @admin.display(description="class")
    def object_type(self, link: EventDetection) -> str:
        return link.detection.object_type

    @admin.display(description="confidence")
    def confidence(self, link: EventDetection) -> str:
        return f"{link.detection.confidence:.2f}"

    @admin.display(description="detected at")
    def detected_at(self, link: EventDetection):
        return link.detection.detected_at

    @admin.display(description="bbox (x, y, w, h)")
    def bbox(self, link: EventDetection) -> str:
        d = link.detection
        return f"{d.bbox_x}, {d.bbox_y}, {d.bbox_width}, {d.bbox_height}"


@admin.register(Event)
class EventAdmin(CascadeSummaryDeleteMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "started_at",
        "camera",
        "risk_level",
        "risk_score",
        "object_types",
        "detection_count",
        "analysis_status",
        "reviewed",
        "suppressed",
        "in_trash",
    )
    list_filter = ("risk_level", "reviewed", "analysis_status", "camera", "suppressed", DeletedFilter)
    list_select_related = ("camera",)
    search_fields = ("summary",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ("-started_at", "-id")
    raw_id_fields = ("batch",)
    inlines = (EventDetectionInline,)
    actions = ("mark_reviewed", "soft_delete", "restore")
    fieldsets = (
        (None, {"fields": ("id", "camera", "started_at", "ended_at", "batch_link", "audit_link")}),
        (
            "Analysis",
            {
                "fields": (
                    "risk_score",
                    "risk_level",
                    "summary",
                    "reasoning",
                    "recommended_action",
                    "analysis_status",
                    "is_fast_path",
                    "object_types",
                    "detection_count",
                    "anomaly_score",
                    "suppressed",
                )
            },
        ),
        ("Review", {"fields": ("reviewed", "reviewed_at", "flagged", "notes", "snooze_until")}),
        ("Record", {"fields": ("version", "deleted_at", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "id",
        "camera",
        "started_at",
        "ended_at",
        "batch_link",
        "audit_link",
        "risk_score",
        "risk_level",
        "summary",
        "reasoning",
        "recommended_action",
        "analysis_status",
        "is_fast_path",
        "object_types",
        "detection_count",
        "anomaly_score",
        "suppressed",
        "reviewed_at",
        "version",
        "deleted_at",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request) -> bool:
        return False  # events are produced by the pipeline

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.deleted_at is not None:
            return (*self.readonly_fields, *EVENT_EDITABLE_FIELDS)  # restore it first (the API refuses too)
        return self.readonly_fields

    @admin.display(boolean=True, description="in trash")
    def in_trash(self, event: Event) -> bool:
        return event.deleted_at is not None

    @admin.display(description="batch")
    def batch_link(self, event: Event) -> str:
        return _admin_link(event.batch) if event.batch_id else "—"

    @admin.display(description="AI audit")
    def audit_link(self, event: Event) -> str:
        audit = EventAudit.objects.filter(event=event).first()
        return _admin_link(audit, f"{audit.backend} / {audit.model or '—'}") if audit else "—"

    def save_model(self, request, obj, form, change):
        """Edits of the review fields go through ``event_update`` (audit, version, broadcast)."""
        from events.services import event_update

        changes = {name: form.cleaned_data[name] for name in EVENT_EDITABLE_FIELDS if name in form.changed_data}
        if not changes:
            return
        try:
            event_update(obj.pk, changes=changes, actor=admin_actor(request))
        except ApiError as error:
            self.message_user(request, f"Event {obj.pk} was not changed: {error.detail}", messages.ERROR)
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        """A hard delete (CONTRACT §1.6: admin only); the API's delete is the soft "soft delete" action."""
        audit_record(admin_actor(request), "event_deleted", "event", obj.pk, details={"hard": True, "source": "admin"})
        super().delete_model(request, obj)
        invalidate_counts("events", "detections")

    def delete_queryset(self, request, queryset):
        actor = admin_actor(request)
        for event_id in queryset.values_list("pk", flat=True):
            audit_record(actor, "event_deleted", "event", event_id, details={"hard": True, "source": "admin"})
        super().delete_queryset(request, queryset)
        invalidate_counts("events", "detections")

    def _apply(self, request, queryset, operation, done: str) -> None:
        actor = admin_actor(request)
        succeeded, refused = 0, []
        for event_id in queryset.values_list("pk", flat=True):
            try:
                operation(event_id, actor)
            except ApiError as error:
                refused.append(f"{event_id}: {error.detail}")
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, f"{succeeded} event(s) {done}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed — " + "; ".join(refused), messages.ERROR)

    @admin.action(description="Mark selected events as reviewed")
    def mark_reviewed(self, request, queryset):
        from events.services import event_update

        self._apply(
            request,
            queryset,
            lambda event_id, actor: event_update(event_id, changes={"reviewed": True}, actor=actor),
            "marked reviewed",
        )

    @admin.action(description="Soft delete selected events (move to trash)")
    def soft_delete(self, request, queryset):
        from events.services import event_soft_delete

        self._apply(request, queryset, lambda event_id, actor: event_soft_delete(event_id, actor=actor), "deleted")

    @admin.action(description="Restore selected events from the trash")
    def restore(self, request, queryset):
        from events.services import event_restore

        self._apply(request, queryset, lambda event_id, actor: event_restore(event_id, actor=actor), "restored")


@admin.register(Detection)
class DetectionAdmin(ReadOnlyAdmin):
    list_display = ("id", "detected_at", "camera", "object_type", "confidence", "media_type", "event_link")
    list_filter = ("media_type", "camera")
    list_select_related = ("camera", "event_link")
    search_fields = ("=id", "file_path")
    ordering = ("-detected_at", "-id")
    raw_id_fields = ("source_file", "batch", "entity")
    exclude = ("embedding",)

    @admin.display(description="event")
    def event_link(self, detection: Detection) -> str:
        link = getattr(detection, "event_link", None)
        if link is None:
            return "—"
        url = reverse("admin:events_event_change", args=[quote(link.event_id)])
        return format_html('<a href="{}">Event {}</a>', url, link.event_id)


@admin.register(EventDetection)
class EventDetectionAdmin(ReadOnlyAdmin):
    """The event ↔ detection links (also shown inline on each event)."""

    list_display = ("id", "event_id", "detection_id", "created_at")
    raw_id_fields = ("event", "detection")
    search_fields = ("=event__id", "=detection__id")
    ordering = ("-id",)


@admin.register(EventAudit)
class EventAuditAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "event_link",
        "backend",
        "model",
        "parse_status",
        "rules_risk_score",
        "latency_ms",
        "evaluation_status",
        "overall_quality_score",
        "created_at",
    )
    list_filter = ("backend", "parse_status", "evaluation_status")
    list_select_related = ("event",)
    ordering = ("-created_at", "-id")

    @admin.display(description="event")
    def event_link(self, audit: EventAudit) -> str:
        return _admin_link(audit.event, f"Event {audit.event_id}")


@admin.register(Entity)
class EntityAdmin(AuditedAdmin):
    """Operators name entities and set their trust; everything else is what re-identification measured. Saves and
    deletes go through ``entity_update`` / ``entity_delete`` (the API's audit rows)."""

    list_display = ("__str__", "entity_type", "trust_status", "label", "detection_count", "last_seen_at")
    list_filter = ("entity_type", "trust_status")
    search_fields = ("label", "notes")
    fields = (
        "id",
        "entity_type",
        "label",
        "trust_status",
        "notes",
        "detection_count",
        "cameras_seen",
        "first_seen_at",
        "last_seen_at",
        "primary_detection_link",
        "embedding_model",
        "embedding_dim",
        "created_at",
        "updated_at",
    )
    readonly_fields = tuple(f for f in fields if f not in ("label", "trust_status", "notes"))
    list_select_related = ("primary_detection",)
    audit_resource_type = "entity"
    audit_actions = (None, "entity_updated", "entity_deleted")

    def has_add_permission(self, request) -> bool:
        return False  # entities are created by re-identification

    def save_model(self, request, obj, form, change):
        """Edits go through ``entity_update``, so the audit row is the API's (CONTRACT §8.2)."""
        from events.services import ENTITY_EDITABLE_FIELDS, entity_update

        changes = {name: form.cleaned_data[name] for name in ENTITY_EDITABLE_FIELDS if name in form.changed_data}
        if changes:
            entity_update(obj.pk, changes=changes, actor=admin_actor(request))
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        from events.services import entity_delete

        entity_delete(obj.pk, actor=admin_actor(request))

    def delete_queryset(self, request, queryset):
        from events.services import entity_delete

        actor = admin_actor(request)
        for entity_id in queryset.values_list("pk", flat=True):
            entity_delete(entity_id, actor=actor)

    @admin.display(description="primary detection")
    def primary_detection_link(self, entity: Entity) -> str:
        if entity.primary_detection_id is None:
            return "—"
        return _admin_link(entity.primary_detection, f"Detection {entity.primary_detection_id}")


class CameraScopedReadOnlyAdmin(ReadOnlyAdmin):
    list_select_related = ("camera",)


@admin.register(EventFeedback)
class EventFeedbackAdmin(CameraScopedReadOnlyAdmin):
    list_display = ("event_id", "camera", "feedback_type", "expected_severity", "suppress", "suppress_until")
    list_filter = ("feedback_type", "suppress")
    raw_id_fields = ("event",)


@admin.register(ActivityBaseline)
class ActivityBaselineAdmin(CameraScopedReadOnlyAdmin):
    list_display = ("camera", "day_of_week", "hour", "avg_count", "sample_count", "last_updated")
    list_filter = ("camera", "day_of_week")
    ordering = ("camera", "day_of_week", "hour")


@admin.register(ClassBaseline)
class ClassBaselineAdmin(CameraScopedReadOnlyAdmin):
    list_display = ("camera", "object_class", "hour", "frequency", "sample_count", "last_updated")
    list_filter = ("camera", "object_class")
    ordering = ("camera", "object_class", "hour")
