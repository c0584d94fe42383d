"""Django admin for cameras and zones (CONTRACT §8.2): zones are edited inline on their camera.

Writes go through ``cameras.services`` so audit rows (actor ``user:<username>``), broadcasts and status-change
signals are those of the API; the forms apply the API's validation first, so bad input is a form error.
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Count, Model

from cameras.geometry import PolygonError, validate_polygon
from cameras.models import Camera, Zone, resolve_folder
from cameras.services import (
    CAMERA_FIELDS,
    ZONE_FIELDS,
    camera_create,
    camera_delete,
    camera_update,
    zone_create,
    zone_delete,
    zone_update,
)
from cameras.slug import has_control_characters, is_camera_id, slugify
from system.admin import CascadeSummaryDeleteMixin, admin_actor

_FORBIDDEN_FOLDER_CHARACTERS = re.compile(r'[<>"|?*]')
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")


class CameraForm(forms.ModelForm):
    """The API's camera rules (CONTRACT §2.2): the id defaults to the slug of the name and never changes."""

    class Meta:
        model = Camera
        fields = ("id", "name", "folder_path", "status", "enabled", "silence_threshold_minutes")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "id" in self.fields:
            self.fields["id"].required = False
            self.fields["id"].help_text = "Lowercase letters, digits and _; leave empty to use the slug of the name."

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("The name must not be blank.")
        if has_control_characters(name):
            raise forms.ValidationError("The name must not contain control characters.")
        if not slugify(name):
            raise forms.ValidationError("The name needs at least one letter or digit.")
        return name

    def clean_folder_path(self) -> str:
        folder = self.cleaned_data["folder_path"]
        if not folder.strip():
            raise forms.ValidationError("The folder path must not be blank.")
        if has_control_characters(folder) or _FORBIDDEN_FOLDER_CHARACTERS.search(folder):
            raise forms.ValidationError('The folder path must not contain control characters or < > " | ? *.')
        if ".." in re.split(r"[\\/]", folder):
            raise forms.ValidationError("The folder path must not contain a '..' segment.")
        resolved = resolve_folder(folder)
        others = Camera.objects.exclude(pk=self.instance.pk) if self.instance.pk else Camera.objects.all()
        for camera_id, other_folder in others.values_list("id", "folder_path"):
            if resolve_folder(other_folder) == resolved:
                raise forms.ValidationError(f"Camera '{camera_id}' already uses this folder.")
        return folder

    def clean(self):
        cleaned = super().clean()
        if "id" in self.fields and not self.errors.get("id"):
            camera_id = (cleaned.get("id") or "").strip() or slugify(cleaned.get("name") or "")
            if not is_camera_id(camera_id):
                self.add_error("id", "The id must match ^[a-z0-9_]{1,64}$.")
            elif Camera.objects.filter(pk=camera_id).exists():
                self.add_error("id", f"Camera with id '{camera_id}' already exists.")
            else:
                cleaned["id"] = camera_id
                self.instance.id = camera_id
        return cleaned


class ZoneForm(forms.ModelForm):
    """The API's zone rules (CONTRACT §2.3): a valid polygon in [0, 1] coordinates and a ``#RRGGBB`` colour."""

    class Meta:
        model = Zone
        fields = ("camera", "name", "zone_type", "shape", "coordinates", "color", "enabled", "priority")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("The name must not be blank.")
        return name

    def clean_coordinates(self):
        try:
            return validate_polygon(self.cleaned_data["coordinates"])
        except PolygonError as error:
            point = f" (point {error.index})" if error.index is not None else ""
            raise forms.ValidationError(f"{error.message}{point}") from None

    def clean_color(self) -> str:
        colour = self.cleaned_data["color"]
        if not _COLOUR.match(colour):
            raise forms.ValidationError("The colour must look like #RRGGBB.")
        return colour


class ZoneInline(admin.TabularInline):
    model = Zone
    form = ZoneForm
    extra = 0
    fields = ZONE_FIELDS
    show_change_link = True


def _copy_into(target: Model, source: Model) -> None:
    """Make the admin's in-memory object the row the service wrote (for messages, redirects and logs)."""
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False


def _zone_data(zone: Zone, fields) -> dict:
    return {field: getattr(zone, field) for field in fields if field in ZONE_FIELDS}


@admin.register(Camera)
class CameraAdmin(CascadeSummaryDeleteMixin, admin.ModelAdmin):
    """Camera and zone writes go through ``cameras.services``: same audit rows and broadcasts as the API."""

    form = CameraForm
    list_display = ("id", "name", "status", "enabled", "folder_path", "last_seen_at", "zone_count", "created_at")
    list_filter = ("status", "enabled")
    search_fields = ("name", "id")
    readonly_fields = ("created_at", "updated_at", "last_seen_at", "status_changed_at")
    fields = ("id", *CAMERA_FIELDS, "last_seen_at", "status_changed_at", "created_at", "updated_at")
    inlines = (ZoneInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(zone_total=Count("zones"))

    @admin.display(description="zones", ordering="zone_total")
    def zone_count(self, obj: Camera) -> int:
        return getattr(obj, "zone_total", 0)

    def get_readonly_fields(self, request, obj=None):
        return ("id", *self.readonly_fields) if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        actor = admin_actor(request)
        if change:
            data = {field: form.cleaned_data[field] for field in CAMERA_FIELDS if field in form.changed_data}
            camera = camera_update(obj.pk, data=data, actor=actor)
        else:
            data = {field: form.cleaned_data[field] for field in CAMERA_FIELDS if field in form.cleaned_data}
            camera = camera_create(data={"id": obj.id, **data}, actor=actor)
        _copy_into(obj, camera)

    def delete_model(self, request, obj):
        camera_delete(obj.pk, actor=admin_actor(request))

    def delete_queryset(self, request, queryset):
        actor = admin_actor(request)
        with transaction.atomic():
            for camera_id in queryset.values_list("pk", flat=True):
                camera_delete(camera_id, actor=actor)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Zone:
            super().save_formset(request, form, formset, change)
            return
        actor = admin_actor(request)
        camera_id = form.instance.pk
        formset.save(commit=False)  # fills new/changed/deleted_objects without writing anything
        for zone in formset.deleted_objects:
            zone_delete(camera_id, zone.pk, actor=actor)
        for zone, changed_fields in formset.changed_objects:
            zone_update(camera_id, zone.pk, data=_zone_data(zone, changed_fields), actor=actor)
        formset.new_objects = [
            zone_create(camera_id, data=_zone_data(zone, ZONE_FIELDS), actor=actor) for zone in formset.new_objects
        ]


@admin.register(Zone)
class ZoneAdmin(CascadeSummaryDeleteMixin, admin.ModelAdmin):
    form = ZoneForm
    list_display = ("name", "camera", "zone_type", "shape", "enabled", "priority", "updated_at")
    list_filter = ("zone_type", "enabled", "camera")
    list_select_related = ("camera",)
    search_fields = ("name", "camera__name", "camera__id")
    fields = ("camera", *ZONE_FIELDS, "id", "created_at", "updated_at")
    readonly_fields = ("id", "created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        return ("camera", *self.readonly_fields) if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        actor = admin_actor(request)
        if change:
            data = _zone_data(obj, form.changed_data)
            zone = zone_update(obj.camera_id, obj.pk, data=data, actor=actor)
        else:
            zone = zone_create(form.cleaned_data["camera"].pk, data=_zone_data(obj, ZONE_FIELDS), actor=actor)
        _copy_into(obj, zone)

    def delete_model(self, request, obj):
        zone_delete(obj.camera_id, obj.pk, actor=admin_actor(request))

    def delete_queryset(self, request, queryset):
        actor = admin_actor(request)
        with transaction.atomic():
            for camera_id, zone_id in queryset.values_list("camera_id", "pk"):
                zone_delete(camera_id, zone_id, actor=actor)
