"""Camera and zone reads (CONTRACT §2.2, §2.3, §4.1)."""

from __future__ import annotations

from django.db.models import QuerySet

from cameras.models import Camera, Zone, resolve_folder


def camera_list() -> QuerySet[Camera]:
    """Every camera in list order (name, id)."""
    return Camera.objects.order_by("name", "id")


def camera_by_resolved_folder(folder_path: str, *, exclude_id: str | None = None) -> Camera | None:
    """The camera whose folder resolves to the same absolute path as ``folder_path`` (relative paths live under
    ``FOSCAM_BASE_PATH``), so ``front`` and ``<root>/front`` are the same folder."""
    target = resolve_folder(folder_path)
    candidates = Camera.objects.all()
    if exclude_id is not None:
        candidates = candidates.exclude(pk=exclude_id)
    for camera in candidates.order_by("id"):  # one query: a home or small site has tens of cameras, not thousands
        if resolve_folder(camera.folder_path) == target:
            return camera
    return None


def camera_for_folder(folder_path: str, camera_id: str) -> Camera | None:
    """§4.1 camera mapping: the camera whose resolved folder is ``folder_path``, else the one with ``camera_id``."""
    return camera_by_resolved_folder(folder_path) or Camera.objects.filter(pk=camera_id).first()


def camera_names_starting_with(prefix: str) -> set[str]:
    return set(Camera.objects.filter(name__startswith=prefix).values_list("name", flat=True))


def zone_list() -> QuerySet[Zone]:
    """Every zone in list order (priority desc, name, id)."""
    return Zone.objects.order_by("-priority", "name", "id")


def zone_list_for_camera(camera_id: str) -> QuerySet[Zone]:
    return zone_list().filter(camera_id=camera_id)


def thumbnail_paths_of_camera(camera_id: str) -> list[str]:
    """Stored thumbnail paths of the camera's detections (read before the camera is deleted)."""
    detection_model = Camera._meta.get_field("detections").related_model  # events imports cameras, not back
    rows = detection_model.objects.filter(camera_id=camera_id).exclude(thumbnail_path__isnull=True)
    rows = rows.exclude(thumbnail_path="")
    return list(rows.values_list("thumbnail_path", flat=True).iterator(chunk_size=10_000))
