"""HTTP uploads (CONTRACT §2.2 upload row, §6.5): check, store atomically in the camera folder, ingest.

Checks run in the contract's order on the uploaded temporary file: size (413), extension (415), magic bytes (415),
dedup (200 ``duplicate``), the §4.2 validation table (422). Only an upload that passes them all is written to
``<camera folder>/uploads/YYYY/MM/DD/<UTC HHMMSSffffff>_<sanitised name>`` and creates an IngestedFile.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from cameras.models import Camera
from hsi.api.errors import ApiError, FieldValidationError, InvalidState, NotFound
from hsi.api.parsers import PayloadTooLarge
from hsi.metrics import files_not_stored
from pipeline.ingest.rules import (
    IMAGE_EXTENSIONS,
    SNIFF_BYTES,
    VIDEO_EXTENSIONS,
    magic_matches_extension,
    media_type_for,
    sanitise_upload_name,
    sniff_mime_type,
)
from pipeline.ingest.service import (
    ACCEPTED,
    DUPLICATE,
    SKIPPED_DISABLED,
    FileInspection,
    dedup_forget,
    dedup_lookup,
    file_ingest,
)
from pipeline.ingest.validation import sha256_of_file, validate_media
from pipeline.models import IngestedFile
from system.models import AuditStatus
from system.services import Actor, audit_record

ACCEPTED_EXTENSIONS = tuple(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
_NAME_ATTEMPTS = 1000


class UnsupportedUpload(ApiError):
    status_code = 415
    code = "unsupported_media_type"


@dataclass(frozen=True)
class UploadResult:
    """``status`` is ``queued`` (stored and ingested) or ``duplicate`` (content already known, nothing written)."""

    status: str
    file_id: int | None
    camera_id: str
    sha256: str
    path: str | None

    def as_json(self) -> dict:
        return {
            "file_id": self.file_id,
            "camera_id": self.camera_id,
            "sha256": self.sha256,
            "path": self.path,
            "status": self.status,
        }


def upload_refuse_disabled(camera: Camera, *, actor: Actor) -> None:
    """409 ``invalid_state`` for a disabled camera, with a ``failure`` audit row."""
    if camera.enabled:
        return
    audit_record(
        actor,
        "file_uploaded",
        "camera",
        camera.id,
        details={"reason": "camera_disabled"},
        status=AuditStatus.FAILURE,
    )
    raise InvalidState(f"Camera {camera.id} is disabled")


def upload_store(camera: Camera, upload: UploadedFile, *, actor: Actor) -> UploadResult:
    """Check ``upload`` (§6.5), store it in the camera folder and ingest it like a watched file."""
    upload_refuse_disabled(camera, actor=actor)
    if upload.size is not None and upload.size > settings.UPLOAD_MAX_BYTES:
        raise PayloadTooLarge(f"File exceeds {settings.UPLOAD_MAX_BYTES} bytes")
    original_name = upload.name or ""
    extension = PurePath(original_name).suffix.lower()
    if extension not in ACCEPTED_EXTENSIONS:
        raise UnsupportedUpload(
            f"File type not allowed: {extension or '(none)'}; accepted: {', '.join(ACCEPTED_EXTENSIONS)}"
        )
    with _local_file(upload) as local:
        head = _head(local)
        if not magic_matches_extension(head, extension):
            raise UnsupportedUpload(f"File content does not match its extension {extension}")
        size = local.stat().st_size
        sha256 = sha256_of_file(local)
        duplicate = _known(camera, sha256, actor=actor, original_name=original_name)
        if duplicate is not None:
            return duplicate
        reason = validate_media(local, media_type=media_type_for(original_name), size=size, sha256=sha256)
        if reason:
            files_not_stored.labels(result="invalid").inc()  # rejected before any row is stored
            raise FieldValidationError([{"field": "file", "message": str(reason)}], detail=f"Upload rejected: {reason}")
        inspection = FileInspection(size=size, sha256=sha256, mime_type=sniff_mime_type(head))
        stored, received_at = _store(local, camera, sanitise_upload_name(original_name))
    return _ingest_stored(camera, stored, inspection, received_at, actor=actor, original_name=original_name)


def _known(camera: Camera, sha256: str, *, actor: Actor, original_name: str) -> UploadResult | None:
    seen, earlier = dedup_lookup(sha256)
    if earlier is None:
        if seen:
            dedup_forget(sha256)  # the cached file was deleted since (retention, camera delete)
        return None
    files_not_stored.labels(result="duplicate").inc()
    return _duplicate_result(camera, earlier, actor=actor, original_name=original_name)


def _duplicate_result(camera: Camera, earlier: IngestedFile, *, actor: Actor, original_name: str) -> UploadResult:
    audit_record(
        actor,
        "file_uploaded",
        "camera",
        camera.id,
        details={"result": "duplicate", "file_id": earlier.id, "sha256": earlier.sha256, "name": original_name},
    )
    return UploadResult("duplicate", earlier.id, earlier.camera_id, earlier.sha256, earlier.path)


def _ingest_stored(
    camera: Camera,
    stored: Path,
    inspection: FileInspection,
    received_at: dt.datetime,
    *,
    actor: Actor,
    original_name: str,
) -> UploadResult:
    outcome = file_ingest(stored, source="upload", camera=camera, received_at=received_at, inspection=inspection)
    if outcome.result == ACCEPTED:
        row = outcome.file
        audit_record(
            actor,
            "file_uploaded",
            "camera",
            camera.id,
            details={
                "result": "queued",
                "file_id": row.id,
                "sha256": row.sha256,
                "path": row.path,
                "size_bytes": row.size_bytes,
                "name": original_name,
            },
        )
        return UploadResult("queued", row.id, camera.id, row.sha256, row.path)
    stored.unlink(missing_ok=True)  # a concurrent ingest won, or the camera changed meanwhile: keep nothing
    if outcome.result == DUPLICATE and outcome.file is not None:
        return _duplicate_result(camera, outcome.file, actor=actor, original_name=original_name)
    if outcome.result == SKIPPED_DISABLED:
        raise InvalidState(f"Camera {camera.id} is disabled")
    raise NotFound(f"Camera {camera.id} not found")


def _store(local: Path, camera: Camera, name: str) -> tuple[Path, dt.datetime]:
    """Copy to ``uploads/YYYY/MM/DD/<HHMMSSffffff>_<name>``: the bytes go to a hidden ``.part`` file first, which
    is then linked under its final name (never replacing another upload; a taken name moves on by a microsecond)."""
    now = timezone.now().astimezone(dt.UTC)
    folder = camera.resolved_folder / "uploads" / f"{now:%Y}" / f"{now:%m}" / f"{now:%d}"
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{uuid.uuid4().hex}.part"
    shutil.copyfile(local, partial)
    try:
        for offset in range(_NAME_ATTEMPTS):
            stamp = now + dt.timedelta(microseconds=offset)
            target = folder / f"{stamp:%H%M%S%f}_{name}"
            if _publish(partial, target):
                return target, stamp
    finally:
        partial.unlink(missing_ok=True)
    raise InvalidState("Could not choose a free file name for the upload; try again")  # pragma: no cover


def _publish(partial: Path, target: Path) -> bool:
    """Give ``partial`` the name ``target`` atomically unless that name is taken."""
    try:
        os.link(partial, target)
    except FileExistsError:
        return False
    except OSError:  # pragma: no cover - file systems without hard links
        if target.exists():
            return False
        os.replace(partial, target)
    return True


@contextmanager
def _local_file(upload: UploadedFile) -> Iterator[Path]:
    """A path holding the upload's bytes: Django's temporary file, or a copy of an in-memory upload."""
    temporary_path = getattr(upload, "temporary_file_path", None)
    if temporary_path is not None:
        yield Path(temporary_path())
        return
    with tempfile.NamedTemporaryFile(prefix="hsi-upload-", suffix=".bin") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
        handle.flush()
        yield Path(handle.name)


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(SNIFF_BYTES)
