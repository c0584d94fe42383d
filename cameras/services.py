"""Camera and zone writes (CONTRACT §1.1, §1.6, §2.2, §2.3, §4.1, §6.8).

Every write runs in one transaction with its audit row; WebSocket messages and file removal happen after commit.
Camera writes that could clash on id, name or folder take a transaction-scoped advisory lock on PostgreSQL, so
two requests can never both pass the duplicate checks (the resolved-folder rule is not a database constraint).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from cameras import selectors
from cameras.models import Camera, CameraStatus, Zone
from cameras.slug import display_name_from_folder, slugify
from hsi.api.counts import invalidate_counts
from hsi.api.errors import Conflict, FieldValidationError, NotFound
from hsi.realtime import broadcast
from hsi.timeutils import utc_iso
from system.models import AuditStatus
from system.services import Actor, audit_record, changes_between

logger = logging.getLogger("hsi.cameras")

CAMERA_FIELDS = ("name", "folder_path", "status", "enabled", "silence_threshold_minutes")
ZONE_FIELDS = ("name", "zone_type", "shape", "coordinates", "color", "enabled", "priority")
NAME_MAX_LENGTH = 255
FOLDER_PATH_MAX_LENGTH = 500
_REGISTRY_LOCK_KEY = 0x48_53_49_43_41_4D  # "HSICAM"
_REGISTER_ATTEMPTS = 3

# Sent after commit on every real status transition, with keyword arguments ``camera_id``, ``camera_name``,
# ``status``, ``previous_status``, ``reason`` and ``changed_at``. The alert engine listens to fire
# ``camera_offline`` rules (§5.5) without this app importing it.
camera_status_changed = Signal()
# Sent after a camera's delete commits, with ``camera_id`` and ``camera_name``: the PostgreSQL delete is one raw
# statement, so Django's ``post_delete`` never fires for it.
camera_deleted = Signal()


# --- cameras ---------------------------------------------------------------------------------------------------


def camera_create(*, data: dict, actor: Actor) -> Camera:
    """Create a camera from validated API data; 409 ``Conflict`` when its id, name or folder is taken."""
    camera_id = data.get("id") or slugify(data["name"])
    if not camera_id:
        raise FieldValidationError({"name": "The name must contain at least one letter or digit"})
    try:
        with transaction.atomic():
            _lock_camera_registry()
            _raise_on_conflict(camera_id=camera_id, name=data["name"], folder_path=data["folder_path"])
            now = timezone.now()
            camera = _insert_camera(
                id=camera_id,
                name=data["name"],
                folder_path=data["folder_path"],
                status=data.get("status", CameraStatus.ONLINE),
                enabled=data.get("enabled", True),
                silence_threshold_minutes=data.get("silence_threshold_minutes"),
                created_at=now,
                updated_at=now,
                status_changed_at=now,
            )
            audit_record(actor, "camera_created", "camera", camera.id, details={"camera": _camera_fields(camera)})
            _broadcast_crud("camera.created", camera)
    except Conflict as conflict:
        _audit_refusal(actor, "camera_created", camera_id, conflict)
        raise
    return camera


def camera_update(camera_id: str, *, data: dict, actor: Actor) -> Camera:
    """Apply the fields present in ``data`` (``id`` is ignored); a request that changes nothing is a no-op."""
    try:
        with transaction.atomic():
            _lock_camera_registry()
            camera = _camera_for_update(camera_id)
            requested = {field: data[field] for field in CAMERA_FIELDS if field in data}
            changes = changes_between({field: getattr(camera, field) for field in requested}, requested)
            if not changes:
                return camera
            _raise_on_conflict(
                name=requested["name"] if "name" in changes else None,
                folder_path=requested["folder_path"] if "folder_path" in changes else None,
                exclude_id=camera.id,
            )
            previous_status = camera.status
            for field in changes:
                setattr(camera, field, requested[field])
            update_fields = list(changes)
            if "status" in changes:
                camera.status_changed_at = timezone.now()
                update_fields.append("status_changed_at")
            _save_camera(camera, update_fields)
            audit_record(actor, "camera_updated", "camera", camera.id, details={"changes": changes})
            _broadcast_crud("camera.updated", camera)
            if "status" in changes:
                _announce_status_change(camera, previous_status, reason="api")
    except Conflict as conflict:
        _audit_refusal(actor, "camera_updated", camera_id, conflict)
        raise
    return camera


def camera_delete(camera_id: str, *, actor: Actor) -> None:
    """Hard delete; the database cascades to everything of §1.6. The detections' thumbnails are removed after
    commit."""
    with transaction.atomic():
        camera = _camera_for_update(camera_id)
        camera_id = camera.id  # the ORM delete below (SQLite) clears the instance's primary key
        thumbnails = selectors.thumbnail_paths_of_camera(camera_id)
        if connection.vendor == "postgresql":
            # ON DELETE CASCADE / SET NULL live in the database (system/db_cascades.py): one statement, however
            # many detections the camera has, instead of Django's collector loading them all.
            Camera.objects.filter(pk=camera_id)._raw_delete(connection.alias)
        else:
            camera.delete()
        invalidate_counts("events", "detections")
        audit_record(
            actor,
            "camera_deleted",
            "camera",
            camera_id,
            details={"name": camera.name, "folder_path": camera.folder_path, "thumbnails": len(thumbnails)},
        )
        broadcast("events", "camera.deleted", {"camera_id": camera_id, "name": camera.name})
        transaction.on_commit(lambda: remove_thumbnails(thumbnails), robust=True)
        transaction.on_commit(lambda: _announce_deleted(camera_id, camera.name), robust=True)


def _announce_deleted(camera_id: str, camera_name: str) -> None:
    for receiver, result in camera_deleted.send_robust(sender=Camera, camera_id=camera_id, camera_name=camera_name):
        if isinstance(result, Exception):
            logger.error("camera_deleted receiver %r failed", receiver, exc_info=result)


def camera_set_status(camera_id: str, status: str, *, reason: str, actor: Actor) -> Camera:
    """Move a camera to ``status``. Only a real transition sets ``status_changed_at``, broadcasts
    ``camera.status_changed`` and sends ``camera_status_changed`` (reason ``api``, ``files_received`` or
    ``silent``)."""
    if status not in CameraStatus.values:
        raise FieldValidationError({"status": f"Must be one of {', '.join(CameraStatus.values)}"})
    with transaction.atomic():
        camera = _camera_for_update(camera_id)
        if camera.status == status:
            return camera
        previous_status = camera.status
        camera.status = status
        camera.status_changed_at = timezone.now()
        camera.save(update_fields=["status", "status_changed_at"])
        _announce_status_change(camera, previous_status, reason=reason)
    logger.info("Camera %s is now %s (was %s, %s, by %s)", camera.id, status, previous_status, reason, actor.name)
    return camera


def camera_register_from_folder(folder_name: str, *, actor: Actor) -> Camera | None:
    """The camera of a top-level folder under ``FOSCAM_BASE_PATH`` (§4.1), auto-created when allowed.

    Matches the camera whose resolved folder is ``<root>/<folder>``, else the one whose id is slug(folder); else,
    with ``AUTO_CREATE_CAMERAS``, creates one. None when the slug is empty or nothing may be created. Safe when
    several watchers or workers register the same folder at once.
    """
    camera_id = slugify(folder_name)
    if not camera_id:
        return None
    folder_path = str(Path(settings.FOSCAM_BASE_PATH) / folder_name)
    for _ in range(_REGISTER_ATTEMPTS):
        existing = selectors.camera_for_folder(folder_path, camera_id)
        if existing is not None:
            return existing
        if not settings.AUTO_CREATE_CAMERAS:
            return None
        if len(folder_path) > FOLDER_PATH_MAX_LENGTH:
            logger.warning("No camera for %s: path longer than %d", folder_path, FOLDER_PATH_MAX_LENGTH)
            return None
        try:
            return _auto_create_camera(camera_id, folder_name, folder_path, actor)
        except IntegrityError:
            logger.info("Camera for folder %s was registered concurrently; reading it back", folder_name)
    return selectors.camera_for_folder(folder_path, camera_id)


def _auto_create_camera(camera_id: str, folder_name: str, folder_path: str, actor: Actor) -> Camera:
    with transaction.atomic():
        _lock_camera_registry()
        existing = selectors.camera_for_folder(folder_path, camera_id)
        if existing is not None:
            return existing
        now = timezone.now()
        camera = Camera.objects.create(
            id=camera_id,
            name=_unique_camera_name(display_name_from_folder(folder_name) or camera_id),
            folder_path=folder_path,
            status=CameraStatus.ONLINE,
            enabled=True,
            created_at=now,
            updated_at=now,
            status_changed_at=now,
        )
        audit_record(
            actor,
            "camera_auto_created",
            "camera",
            camera.id,
            details={"folder": folder_name, "camera": _camera_fields(camera)},
        )
        _broadcast_crud("camera.created", camera)
    logger.info("Auto-created camera %s (%s) for folder %s", camera.id, camera.name, folder_path)
    return camera


def _unique_camera_name(base: str) -> str:
    """``base``, else ``base (2)``, ``base (3)``… — the first one no camera uses."""
    base = base[:NAME_MAX_LENGTH]
    taken = selectors.camera_names_starting_with(base[: NAME_MAX_LENGTH - 8])
    if base not in taken:
        return base
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = base[: NAME_MAX_LENGTH - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        number += 1


def remove_thumbnails(paths: list[str]) -> int:
    """Delete the given thumbnail files; only files inside ``HSI_DATA_DIR/thumbnails``; missing ones are fine."""
    root = Path(os.path.realpath(Path(settings.HSI_DATA_DIR) / "thumbnails"))
    removed = 0
    for raw in paths:
        path = Path(raw) if os.path.isabs(raw) else root / raw
        if path.name in ("", ".", ".."):
            continue
        # Resolve the folder, not the file: a symlink is removed itself and its target is never touched.
        candidate = Path(os.path.realpath(path.parent)) / path.name
        if not candidate.parent.is_relative_to(root):
            logger.warning("Not removing thumbnail outside %s: %s", root, raw)
            continue
        try:
            if candidate.is_symlink() or candidate.is_file():
                candidate.unlink()
                removed += 1
        except FileNotFoundError:
            continue
        except OSError:
            logger.warning("Could not remove thumbnail %s", candidate, exc_info=True)
    return removed


def _lock_camera_registry() -> None:
    """Serialise camera creates/updates on PostgreSQL until the transaction ends (SQLite has one writer)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REGISTRY_LOCK_KEY])


def _camera_for_update(camera_id: str) -> Camera:
    camera = Camera.objects.select_for_update().filter(pk=camera_id).first()
    if camera is None:
        raise NotFound(f"Camera {camera_id} not found")
    return camera


def _raise_on_conflict(
    *,
    camera_id: str | None = None,
    name: str | None = None,
    folder_path: str | None = None,
    exclude_id: str | None = None,
) -> None:
    others = Camera.objects.exclude(pk=exclude_id) if exclude_id else Camera.objects.all()
    if camera_id is not None and others.filter(pk=camera_id).exists():
        raise _duplicate("id", camera_id, camera_id)
    if name is not None:
        existing_id = others.filter(name=name).values_list("id", flat=True).first()
        if existing_id is not None:
            raise _duplicate("name", name, existing_id)
    if folder_path is not None:
        existing = selectors.camera_by_resolved_folder(folder_path, exclude_id=exclude_id)
        if existing is not None:
            raise _duplicate("folder_path", folder_path, existing.id)


def _duplicate(field: str, value: str, existing_id: str) -> Conflict:
    return Conflict(f"Camera with {field} '{value}' already exists", existing_id=existing_id)


def _insert_camera(**values: Any) -> Camera:
    try:
        with transaction.atomic():
            return Camera.objects.create(**values)
    except IntegrityError:
        # Someone inserted outside the registry lock: report the clash like the checks above would.
        _raise_on_conflict(camera_id=values["id"], name=values["name"], folder_path=values["folder_path"])
        raise


def _save_camera(camera: Camera, update_fields: list[str]) -> None:
    try:
        with transaction.atomic():
            camera.save(update_fields=update_fields)
    except IntegrityError:
        _raise_on_conflict(
            name=camera.name if "name" in update_fields else None,
            folder_path=camera.folder_path if "folder_path" in update_fields else None,
            exclude_id=camera.id,
        )
        raise


def _audit_refusal(actor: Actor, action: str, camera_id: str, conflict: Conflict) -> None:
    details = {"reason": str(conflict.detail), "existing_id": conflict.extensions.get("existing_id")}
    audit_record(actor, action, "camera", camera_id, details=details, status=AuditStatus.FAILURE)


def _camera_fields(camera: Camera) -> dict:
    return {field: getattr(camera, field) for field in CAMERA_FIELDS}


def _broadcast_crud(message_type: str, camera: Camera) -> None:
    broadcast("events", message_type, {"camera_id": camera.id, "name": camera.name})


def _announce_status_change(camera: Camera, previous_status: str, *, reason: str) -> None:
    last_seen = camera.last_seen_at
    broadcast(
        "events",
        "camera.status_changed",
        {
            "camera_id": camera.id,
            "camera_name": camera.name,
            "status": camera.status,
            "previous_status": previous_status,
            "reason": reason,
            "last_seen_at": utc_iso(last_seen),
        },
    )
    signal_kwargs = {
        "camera_id": camera.id,
        "camera_name": camera.name,
        "status": camera.status,
        "previous_status": previous_status,
        "reason": reason,
        "changed_at": camera.status_changed_at,
    }
    transaction.on_commit(lambda: _send_status_signal(signal_kwargs), robust=True)


def _send_status_signal(kwargs: dict) -> None:
    for receiver, result in camera_status_changed.send_robust(sender=Camera, **kwargs):
        if isinstance(result, Exception):
            logger.error("camera_status_changed receiver %r failed", receiver, exc_info=result)


# --- zones -----------------------------------------------------------------------------------------------------


def zone_create(camera_id: str, *, data: dict, actor: Actor) -> Zone:
    with transaction.atomic():
        camera = Camera.objects.select_for_update().filter(pk=camera_id).first()
        if camera is None:
            raise NotFound(f"Camera {camera_id} not found")
        now = timezone.now()
        values = {field: data[field] for field in ZONE_FIELDS if field in data}
        zone = Zone.objects.create(camera=camera, created_at=now, updated_at=now, **values)
        audit_record(
            actor, "zone_created", "zone", zone.id, details={"camera_id": camera.id, "zone": _zone_fields(zone)}
        )
    return zone


def zone_update(camera_id: str, zone_id, *, data: dict, actor: Actor) -> Zone:
    with transaction.atomic():
        zone = _zone_for_update(camera_id, zone_id)
        requested = {field: data[field] for field in ZONE_FIELDS if field in data}
        changes = changes_between({field: getattr(zone, field) for field in requested}, requested)
        if not changes:
            return zone
        for field in changes:
            setattr(zone, field, requested[field])
        zone.save(update_fields=list(changes))
        audit_record(actor, "zone_updated", "zone", zone.id, details={"camera_id": zone.camera_id, "changes": changes})
    return zone


def zone_delete(camera_id: str, zone_id, *, actor: Actor) -> None:
    with transaction.atomic():
        zone = _zone_for_update(camera_id, zone_id)
        zone_pk = zone.pk
        zone.delete()
        audit_record(actor, "zone_deleted", "zone", zone_pk, details={"camera_id": camera_id, "name": zone.name})


def _zone_for_update(camera_id: str, zone_id) -> Zone:
    if not Camera.objects.filter(pk=camera_id).exists():
        raise NotFound(f"Camera {camera_id} not found")
    zone = Zone.objects.select_for_update().filter(camera_id=camera_id, pk=zone_id).first()
    if zone is None:
        raise NotFound(f"Zone {zone_id} not found")
    return zone


def _zone_fields(zone: Zone) -> dict:
    return {field: getattr(zone, field) for field in ZONE_FIELDS}


# --- silence (§4.12) -------------------------------------------------------------------------------------------


def cameras_check_silence(now) -> list[str]:
    """Enabled online cameras with a silence threshold whose last file (or creation, before any file) is older
    than the threshold go offline with reason ``silent``. Returns their ids. Each camera is re-checked under its
    row lock, so a file accepted meanwhile keeps it online."""
    candidates = Camera.objects.filter(
        enabled=True, status=CameraStatus.ONLINE, silence_threshold_minutes__isnull=False
    ).values_list("id", "last_seen_at", "created_at", "silence_threshold_minutes")
    silenced = []
    for camera_id, last_seen_at, created_at, threshold in candidates:
        if not _is_silent(last_seen_at, created_at, threshold, now):
            continue
        with transaction.atomic():
            camera = Camera.objects.select_for_update().filter(pk=camera_id).first()
            if camera is None or not _still_silent(camera, now):
                continue
            camera_set_status(camera_id, CameraStatus.OFFLINE, reason="silent", actor=Actor.system("silence-check"))
        silenced.append(camera_id)
    return silenced


def _is_silent(last_seen_at, created_at, threshold_minutes: int, now) -> bool:
    from datetime import timedelta

    return (last_seen_at or created_at) < now - timedelta(minutes=threshold_minutes)


def _still_silent(camera: Camera, now) -> bool:
    return (
        camera.enabled
        and camera.status == CameraStatus.ONLINE
        and camera.silence_threshold_minutes is not None
        and _is_silent(camera.last_seen_at, camera.created_at, camera.silence_threshold_minutes, now)
    )
