"""Django admin for the system app, plus the building blocks every app's admin uses (CONTRACT §8.2).

- :class:`ReadOnlyAdmin`: history and machine-written records (audit logs, log entries, GPU stats, …) can be
  looked at, never added, changed or deleted.
- :class:`AuditedAdmin`: every add, change and delete made in the admin writes the §6.8 audit row, with the
  actor ``user:<username>``, in the same transaction as the change (the admin's views are atomic).
- API keys: the add form takes a name and optional expiry; the key is created by ``api_key_create`` and shown
  once; the "revoke" action calls ``api_key_revoke``. The hash is never shown or editable.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection, models, transaction
from django.db.models import Model, QuerySet
from django.utils.functional import cached_property

from system.models import ApiKey, AuditLog, GPUStat, LogEntry
from system.services import Actor, actor_from_request, api_key_create, api_key_revoke, audit_record, changes_between

UNAUDITED_FIELDS = frozenset({"created_at", "updated_at"})


def admin_actor(request) -> Actor:
    """``user:<username>`` with the request's address, agent and request id."""
    return actor_from_request(request)


def field_values(obj: Model | None, ignored: frozenset[str] = UNAUDITED_FIELDS) -> dict[str, Any]:
    """The concrete field values of ``obj`` keyed by field name (FKs by name, holding the raw id)."""
    if obj is None:
        return {}
    return {f.name: getattr(obj, f.attname) for f in obj._meta.concrete_fields if f.name not in ignored}


class EstimatedCountPaginator(Paginator):
    """An unfiltered changelist of a big PostgreSQL table uses the planner's row estimate instead of COUNT(*).

    Counting a million rows costs more than rendering the page (DESIGN §6); filtered lists and small tables
    (estimate under :data:`EXACT_COUNT_BELOW`, or never analysed) are counted exactly.
    """

    EXACT_COUNT_BELOW = 100_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
                )
                row = cursor.fetchone()
            if row and row[0] >= self.EXACT_COUNT_BELOW:
                return int(row[0])
        return super().count


class CascadeSummaryDeleteMixin:
    """The delete confirmation counts what the database cascade removes instead of loading every row.

    Django's default walks every related row (a camera with a million detections would never render) and asks
    for delete permission on each related model, which the read-only records below do not grant. Deleting a row
    here removes what the API's delete removes (CONTRACT §1.6), so the permission on the row itself suffices.
    """

    LISTED_OBJECTS = 100

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        model = self.model
        pks = [obj.pk for obj in objs]
        counts = {model._meta.verbose_name_plural: len(objs)}
        for relation in model._meta.related_objects:
            if getattr(relation, "on_delete", None) is not models.CASCADE:
                continue
            related = relation.related_model
            total = related._base_manager.filter(**{f"{relation.field.name}__in": pks}).count()
            if total:
                counts[related._meta.verbose_name_plural] = total
        listed = [str(obj) for obj in objs[: self.LISTED_OBJECTS]]
        if len(objs) > self.LISTED_OBJECTS:
            listed.append(f"… and {len(objs) - self.LISTED_OBJECTS} more")
        return listed, counts, set(), []


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only: no add, change or delete permission for anyone, superusers included."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AuditedAdmin(CascadeSummaryDeleteMixin, admin.ModelAdmin):
    """Writes ``<audit_actions>`` audit rows for admin saves and deletes (CONTRACT §6.8)."""

    audit_resource_type: str = ""
    audit_actions: tuple[str | None, str | None, str | None] = (None, None, None)  # created, updated, deleted
    audit_secret_fields: frozenset[str] = frozenset()

    def audit_resource_id(self, obj: Model) -> str:
        return str(obj.pk)

    def save_model(self, request, obj, form, change):
        before = field_values(type(obj)._default_manager.filter(pk=obj.pk).first()) if change else None
        super().save_model(request, obj, form, change)
        self.audit_saved(request, obj, before)

    def audit_saved(self, request, obj: Model, before: dict | None) -> None:
        created_action, updated_action, _ = self.audit_actions
        if before is None:
            if created_action:
                audit_record(
                    admin_actor(request),
                    created_action,
                    self.audit_resource_type,
                    self.audit_resource_id(obj),
                    details={"source": "admin"},
                )
            return
        changes = changes_between(before, field_values(obj), self.audit_secret_fields)
        if changes and updated_action:
            audit_record(
                admin_actor(request),
                updated_action,
                self.audit_resource_type,
                self.audit_resource_id(obj),
                details={"changes": changes, "source": "admin"},
            )

    def audit_deleted(self, request, obj: Model) -> None:
        deleted_action = self.audit_actions[2]
        if deleted_action:
            audit_record(
                admin_actor(request),
                deleted_action,
                self.audit_resource_type,
                self.audit_resource_id(obj),
                details={"source": "admin"},
            )

    def delete_model(self, request, obj):
        with transaction.atomic():
            self.audit_deleted(request, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                self.audit_deleted(request, obj)
            super().delete_queryset(request, queryset)


# --- audit trail, logs, GPU stats -----------------------------------------------------------------------------


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "action", "resource_type", "resource_id", "actor", "status", "ip_address")
    list_filter = ("status", "resource_type")
    search_fields = ("action", "resource_id", "actor", "request_id")
    date_hierarchy = None
    ordering = ("-timestamp", "-id")


@admin.register(LogEntry)
class LogEntryAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "level", "component", "short_message", "camera_id", "source", "request_id")
    list_filter = ("level", "source")
    search_fields = ("component", "message", "camera_id", "request_id")
    ordering = ("-timestamp", "-id")

    @admin.display(description="message")
    def short_message(self, obj: LogEntry) -> str:
        return obj.message if len(obj.message) <= 120 else obj.message[:119] + "…"


@admin.register(GPUStat)
class GPUStatAdmin(ReadOnlyAdmin):
    list_display = (
        "recorded_at",
        "host",
        "gpu_index",
        "gpu_name",
        "utilization",
        "memory_used",
        "memory_total",
        "temperature",
        "power_usage",
        "inference_fps",
    )
    list_filter = ("host",)
    ordering = ("-recorded_at", "-id")


# --- API keys -------------------------------------------------------------------------------------------------


class ApiKeyAddForm(forms.ModelForm):
    expires_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, help_text="Leave empty for a key that never expires."
    )

    class Meta:
        model = ApiKey
        fields = ("name",)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("The key name must not be blank.")
        return name


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at", "active")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    readonly_fields = ("name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    fields = readonly_fields
    actions = ("revoke_keys",)

    @admin.display(boolean=True, description="active")
    def active(self, obj: ApiKey) -> bool:
        return obj.is_active()

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
            kwargs["fields"] = ("name", "expires_days")
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        return ("name", "expires_days") if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # keys are revoked, not deleted, so the audit trail keeps its meaning

    def save_model(self, request, obj, form, change):
        if change:
            return
        created = api_key_create(
            form.cleaned_data["name"], expires_days=form.cleaned_data.get("expires_days"), actor=admin_actor(request)
        )
        obj.pk = created.api_key.pk
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created.api_key, field.attname))
        obj._state.adding = False
        messages.success(
            request,
            f"API key “{obj.name}” created: {created.plaintext} — copy it now, it will not be shown again. "
            "Send it in the X-API-Key header.",
        )

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset):
        actor = admin_actor(request)
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key.name, actor=actor)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)
