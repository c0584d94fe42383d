"""Demo data (CONTRACT §2.16, §8.1).

``demo_seed`` fills the database with plausible demo cameras, analysed events, their detections, batches and
AI-audit rows, and alerts for the enabled rules that match; ``demo_clear`` removes pipeline and event data while
keeping configuration (rules, channels, preferences) and history (logs, audit rows).

Seeding is bulk work: every table is written with one ``bulk_create``, so 500 events take a fraction of a second.

Alerts use a deliberately small matcher, not the alert engine: an enabled ``event`` rule fires for a seeded
event when its ``risk_threshold``, ``camera_ids`` and detection conditions (``object_types`` and
``min_confidence``, satisfied together by one detection) all hold. Rules with ``zone_ids`` or a ``schedule`` are
never matched here (the demo cannot honour them faithfully). Cooldown applies between the seeded alerts
themselves. Seeded alerts are history: they stay ``pending`` with no channels, and no notification is sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Max, Q, Value, When
from django.utils import timezone

from alerts.models import Alert, AlertKind, AlertRule, AlertStatus, Delivery, RuleTrigger
from cameras.geometry import point_in_polygon
from cameras.models import Camera, Zone, resolve_folder
from cameras.services import camera_create
from events.models import (
    ActivityBaseline,
    AnalysisStatus,
    AnalyzerBackend,
    ClassBaseline,
    Detection,
    Entity,
    Event,
    EventAudit,
    EventDetection,
    EventFeedback,
    MediaType,
    ParseStatus,
)
from events.risk import risk_bands, risk_level_for
from hsi.api.counts import invalidate_counts
from pipeline.models import Batch, BatchStatus, CloseReason, FailedJob, FileSource, FileStatus, IngestedFile
from system.services import Actor, audit_record

logger = logging.getLogger("hsi.system.seeding")

DEMO_CAMERAS: tuple[tuple[str, str], ...] = (
    ("front_door", "Front Door"),
    ("backyard", "Backyard"),
    ("garage", "Garage"),
    ("driveway", "Driveway"),
    ("side_gate", "Side Gate"),
    ("porch", "Porch"),
)
SEED_LIMITS: dict[str, tuple[int, int]] = {"cameras": (1, 6), "events": (0, 500), "days": (1, 30)}
SEED_DEFAULTS: dict[str, int | bool] = {
    "cameras": 3,
    "events": 20,
    "days": 7,
    "clear_existing": False,
    "create_media": False,
}
CLEAR_CONFIRMATION = "DELETE_ALL_DATA"

RISK_MIX: tuple[tuple[str, float], ...] = (("low", 0.60), ("medium", 0.25), ("high", 0.12), ("critical", 0.03))
IMAGE_WIDTH, IMAGE_HEIGHT = 1280, 720
RULES_MODEL = "rules-v1"
RECOMMENDED_ACTIONS = {
    "low": "No action needed",
    "medium": "Review when convenient",
    "high": "Review promptly",
    "critical": "Check the camera now",
}

# Primary class of an event by level, and the pool its other detections come from.
_PRIMARY_CLASSES = {
    "low": ("car", "car", "dog", "cat", "bird", "bicycle", "truck", "person"),
    "medium": ("person",),
    "high": ("person",),
    "critical": ("person",),
}
_COMPANION_CLASSES = {
    "low": ("car", "dog", "cat", "bird", "person"),
    "medium": ("person", "person", "car", "dog"),
    "high": ("person", "person", "car", "motorcycle"),
    "critical": ("person", "car"),
}
_WEAPONS = ("knife", "baseball bat")
# (min width, max width, min height, max height) in pixels of a 1280×720 frame.
_BOX_SIZES = {
    "person": (60, 160, 160, 420),
    "car": (220, 480, 120, 260),
    "truck": (260, 520, 160, 300),
    "motorcycle": (100, 220, 90, 180),
    "bicycle": (100, 200, 80, 160),
    "dog": (50, 150, 40, 120),
    "cat": (40, 110, 30, 90),
    "bird": (20, 60, 15, 45),
    "knife": (15, 40, 30, 80),
    "baseball bat": (20, 50, 80, 160),
}
_BOX_COLOURS = {
    "person": (231, 72, 86),
    "car": (59, 130, 246),
    "truck": (59, 130, 246),
    "bus": (59, 130, 246),
    "dog": (118, 185, 0),
    "cat": (118, 185, 0),
    "bird": (118, 185, 0),
    "bicycle": (255, 184, 0),
    "motorcycle": (255, 184, 0),
}
_DEDUP_UNSAFE = re.compile(r"[^A-Za-z0-9_:.-]")
_TEMPLATE_VARIABLE = re.compile(r"\{(camera_id|rule_id|severity|object_type)\}")


# --- validation ---------------------------------------------------------------------------------------------


def seed_option_errors(*, cameras: object, events: object, days: object) -> dict[str, str]:
    """``{field: message}`` for every count outside :data:`SEED_LIMITS` (booleans are not integers)."""
    errors = {}
    for name, value in (("cameras", cameras), ("events", events), ("days", days)):
        low, high = SEED_LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int):
            errors[name] = f"Must be an integer between {low} and {high}"
        elif not low <= value <= high:
            errors[name] = f"Must be between {low} and {high}, got {value}"
    return errors


# --- risk -----------------------------------------------------------------------------------------------------


def level_counts(total: int) -> dict[str, int]:
    """Split ``total`` events over :data:`RISK_MIX` exactly (largest remainder), so every run has the same mix."""
    shares = {level: total * share for level, share in RISK_MIX}
    counts = {level: int(share) for level, share in shares.items()}
    missing = total - sum(counts.values())
    by_remainder = sorted(shares, key=lambda level: shares[level] - counts[level], reverse=True)
    for level in by_remainder[:missing]:
        counts[level] += 1
    return counts


# --- seeding --------------------------------------------------------------------------------------------------


@dataclass
class _PlannedEvent:
    event: Event
    batch: Batch
    detections: list[Detection] = field(default_factory=list)
    files: list[IngestedFile] = field(default_factory=list)


def demo_seed(
    *,
    cameras: int,
    events: int,
    days: int,
    clear_existing: bool,
    create_media: bool,
    actor: Actor,
    rng: random.Random | None = None,
) -> dict:
    """Create demo data; returns ``{cameras_created, events_created, detections_created, alerts_created, cleared}``.

    ``clear_existing`` first runs :func:`demo_clear` keeping cameras (their zones and folders are configuration).
    ``create_media`` writes one generated JPEG per detection into the camera folder, records it as an
    ``IngestedFile`` (``source = seed``, so the watcher's hash dedup skips it) and points the detection at it.
    """
    errors = seed_option_errors(cameras=cameras, events=events, days=days)
    if errors:
        raise ValueError(f"Invalid seed options: {errors}")
    rng = rng or random.Random()
    written: list[Path] = []
    try:
        with transaction.atomic():
            if clear_existing:
                demo_clear(keep_cameras=True, actor=actor)
            camera_rows, created_ids = _ensure_demo_cameras(cameras, actor)
            now = timezone.now()
            scenes = _scenes(camera_rows)
            plans = [_plan_event(rng, scene, level, now, days) for scene, level in _event_slots(rng, scenes, events)]
            if create_media:
                written = _write_media(rng, plans)
            detections_created = _insert_plans(plans)
            alerts_created = _create_alerts(plans)
            _touch_last_seen(plans)
            result = {
                "cameras_created": len(created_ids),
                "events_created": len(plans),
                "detections_created": detections_created,
                "alerts_created": alerts_created,
                "cleared": bool(clear_existing),
            }
            parameters = {
                "cameras": cameras,
                "events": events,
                "days": days,
                "clear_existing": clear_existing,
                "create_media": create_media,
            }
            details = {"parameters": parameters, "counts": result, "camera_ids": [c.id for c in camera_rows]}
            details.update(created_camera_ids=created_ids, media_files_written=len(written))
            audit_record(actor, "data_seeded", "system", None, details=details)
            invalidate_counts("events", "detections", "alerts")
    except BaseException:
        _remove_files(written)
        raise
    logger.info("Seeded demo data: %s", result)
    return result


def _ensure_demo_cameras(count: int, actor: Actor) -> tuple[list[Camera], list[str]]:
    """The first ``count`` demo cameras, creating the missing ones; existing ids are reused untouched.

    New cameras go through ``camera_create`` (audit row ``camera_created`` and the ``camera.created`` broadcast).
    A new camera whose name or folder is already used by another camera gets ``"<name> (demo)"`` or folder
    ``demo_<id>`` instead of failing.
    """
    wanted = DEMO_CAMERAS[:count]
    existing = {camera.id: camera for camera in Camera.objects.filter(id__in=[cid for cid, _ in wanted])}
    taken_names = set(Camera.objects.values_list("name", flat=True))
    taken_folders: set[str] = set()
    for folder_path in Camera.objects.values_list("folder_path", flat=True):
        taken_folders.update({folder_path, str(resolve_folder(folder_path))})
    new_cameras = []
    for camera_id, base_name in wanted:
        if camera_id in existing:
            continue
        name = _first_free(_name_candidates(base_name), lambda value: value in taken_names)
        folder = _first_free(
            _folder_candidates(camera_id),
            lambda value: value in taken_folders or str(resolve_folder(value)) in taken_folders,
        )
        taken_names.add(name)
        taken_folders.update({folder, str(resolve_folder(folder))})
        new_cameras.append(camera_create(data={"id": camera_id, "name": name, "folder_path": folder}, actor=actor))
    by_id = {**existing, **{camera.id: camera for camera in new_cameras}}
    return [by_id[camera_id] for camera_id, _ in wanted], [camera.id for camera in new_cameras]


def _name_candidates(base: str) -> Iterator[str]:
    yield base
    yield f"{base} (demo)"
    yield from (f"{base} (demo {n})" for n in itertools.count(2))


def _folder_candidates(camera_id: str) -> Iterator[str]:
    yield camera_id
    yield f"demo_{camera_id}"
    yield from (f"demo_{camera_id}_{n}" for n in itertools.count(2))


def _first_free(candidates: Iterator[str], is_taken: Callable[[str], bool]) -> str:
    return next(candidate for candidate in candidates if not is_taken(candidate))


@dataclass(frozen=True)
class _Scene:
    """What the seeder needs of one camera: the row, its resolved folder and its enabled zones."""

    camera: Camera
    folder: str
    zones: list[tuple[str, list]]


def _scenes(cameras: list[Camera]) -> list[_Scene]:
    zones: dict[str, list[tuple[str, list]]] = {camera.id: [] for camera in cameras}
    rows = Zone.objects.filter(camera_id__in=list(zones), enabled=True).values_list("camera_id", "id", "coordinates")
    for camera_id, zone_id, coordinates in rows:
        zones[camera_id].append((str(zone_id), coordinates))
    return [_Scene(camera, str(camera.resolved_folder), zones[camera.id]) for camera in cameras]


def _event_slots(rng: random.Random, scenes: list[_Scene], total: int) -> list[tuple[_Scene, str]]:
    levels = [level for level, count in level_counts(total).items() for _ in range(count)]
    rng.shuffle(levels)
    return [(rng.choice(scenes), level) for level in levels]


def _plan_event(rng: random.Random, scene: _Scene, level: str, now: dt.datetime, days: int) -> _PlannedEvent:
    camera = scene.camera
    low, high = risk_bands()[level]
    score = rng.randint(min(max(low, 5), high), high) if level == "low" else rng.randint(low, high)
    level = risk_level_for(score)
    started_at = now - dt.timedelta(seconds=rng.uniform(180, days * 86400))
    classes = _event_classes(rng, level)
    offsets = sorted(rng.uniform(0, 45) for _ in classes)
    offsets = [0.0, *offsets[1:]]
    batch = Batch(camera=camera, status=BatchStatus.DONE, close_reason=CloseReason.IDLE, analysis_attempts=1)
    detections = [
        _detection(rng, scene, batch, object_type, started_at + dt.timedelta(seconds=offset))
        for object_type, offset in zip(classes, offsets, strict=True)
    ]
    ended_at = max(d.detected_at for d in detections)
    closed_at = ended_at + dt.timedelta(seconds=30)
    batch.opened_at, batch.last_detection_at, batch.closed_at = started_at, ended_at, closed_at
    batch.detection_count = len(detections)
    batch.created_at, batch.updated_at = started_at, closed_at
    analysed_at = closed_at + dt.timedelta(milliseconds=rng.randint(5, 400))
    event = Event(
        camera=camera,
        batch=batch,
        started_at=started_at,
        ended_at=ended_at,
        risk_score=score,
        risk_level=level,
        summary=_summary(detections, camera, started_at),
        reasoning=f"Demo data: a {level}-risk scene generated by the seeder (rules score {score}).",
        recommended_action=RECOMMENDED_ACTIONS[level],
        analysis_status=AnalysisStatus.RULES,
        object_types=",".join(sorted({d.object_type for d in detections})),
        detection_count=len(detections),
        created_at=analysed_at,
        updated_at=analysed_at,
    )
    return _PlannedEvent(event=event, batch=batch, detections=detections)


def _event_classes(rng: random.Random, level: str) -> list[str]:
    count = rng.randint(2, 5) if level == "critical" else rng.randint(1, 5)
    classes = [rng.choice(_PRIMARY_CLASSES[level])]
    if level == "critical":
        classes.append(rng.choice(_WEAPONS))
    while len(classes) < count:
        classes.append(rng.choice(_COMPANION_CLASSES[level]))
    return classes


def _detection(
    rng: random.Random, scene: _Scene, batch: Batch, object_type: str, detected_at: dt.datetime
) -> Detection:
    camera = scene.camera
    min_w, max_w, min_h, max_h = _BOX_SIZES.get(object_type, (60, 200, 60, 200))
    width, height = rng.randint(min_w, max_w), rng.randint(min_h, max_h)
    x = rng.randint(0, IMAGE_WIDTH - width)
    y = rng.randint(min(int(IMAGE_HEIGHT * 0.25), IMAGE_HEIGHT - height), IMAGE_HEIGHT - height)
    centre = ((x + width / 2) / IMAGE_WIDTH, (y + height / 2) / IMAGE_HEIGHT)
    name = f"demo_{camera.id}_{detected_at:%Y%m%d_%H%M%S_%f}_{rng.getrandbits(24):06x}.jpg"
    return Detection(
        camera=camera,
        batch=batch,
        file_path=os.path.join(scene.folder, name),
        file_type="image/jpeg",
        media_type=MediaType.IMAGE,
        detected_at=detected_at,
        object_type=object_type,
        confidence=round(rng.uniform(0.55, 0.98), 3),
        bbox_x=x,
        bbox_y=y,
        bbox_width=width,
        bbox_height=height,
        image_width=IMAGE_WIDTH,
        image_height=IMAGE_HEIGHT,
        zone_ids=[zone_id for zone_id, coordinates in scene.zones if _contains(coordinates, centre)],
        created_at=detected_at,
    )


def _contains(coordinates, point: tuple[float, float]) -> bool:
    try:
        return point_in_polygon(point[0], point[1], coordinates)
    except (TypeError, ValueError, IndexError):
        return False


def _summary(detections: list[Detection], camera: Camera, started_at: dt.datetime) -> str:
    counts = Counter(d.object_type for d in detections)
    parts = ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return f"{parts} detected on {camera.name} at {timezone.localtime(started_at):%H:%M}."


def _insert_plans(plans: list[_PlannedEvent]) -> int:
    """Bulk-insert files, batches, detections, events, links and audits; returns the number of detections."""
    IngestedFile.objects.bulk_create([f for plan in plans for f in plan.files])
    for plan in plans:
        for detection, source in zip(plan.detections, plan.files or [None] * len(plan.detections), strict=True):
            detection.source_file = source
    Batch.objects.bulk_create([plan.batch for plan in plans])
    detections = [d for plan in plans for d in plan.detections]
    Detection.objects.bulk_create(detections)
    Event.objects.bulk_create([plan.event for plan in plans])
    EventDetection.objects.bulk_create(
        [
            EventDetection(event=plan.event, detection=detection, created_at=plan.event.created_at)
            for plan in plans
            for detection in plan.detections
        ]
    )
    EventAudit.objects.bulk_create([_audit_for(plan.event) for plan in plans])
    return len(detections)


def _audit_for(event: Event) -> EventAudit:
    latency = int((event.created_at - event.batch.closed_at).total_seconds() * 1000)
    return EventAudit(
        event=event,
        backend=AnalyzerBackend.RULES,
        model=RULES_MODEL,
        parse_status=ParseStatus.NOT_APPLICABLE,
        rules_risk_score=event.risk_score,
        attempts=0,
        latency_ms=max(latency, 1),
        created_at=event.created_at,
    )


def _touch_last_seen(plans: list[_PlannedEvent]) -> None:
    """Move each camera's ``last_seen_at`` up to its newest seeded detection (one UPDATE)."""
    newest: dict[str, dt.datetime] = {}
    for plan in plans:
        camera_id = plan.event.camera_id
        newest[camera_id] = max(newest.get(camera_id, plan.event.ended_at), plan.event.ended_at)
    if not newest:
        return
    later = [
        When(Q(pk=camera_id) & (Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=seen_at)), then=Value(seen_at))
        for camera_id, seen_at in newest.items()
    ]
    Camera.objects.filter(pk__in=list(newest)).update(last_seen_at=Case(*later, default=F("last_seen_at")))


# --- alerts (simple matcher; the alert engine proper lives in alerts/) ---------------------------------------


def _create_alerts(plans: list[_PlannedEvent]) -> int:
    rules = [
        rule
        for rule in AlertRule.objects.filter(enabled=True, trigger=RuleTrigger.EVENT)
        if not rule.zone_ids and not rule.schedule
    ]
    if not rules:
        return 0
    last_alert: dict[tuple, dt.datetime] = {}
    alerts = []
    # In the order the alerts would have been raised: by the events' creation (an event that started later can be
    # created earlier, when its batch closed sooner), which is what the cooldown compares.
    for plan in sorted(plans, key=lambda p: (p.event.created_at, p.event.started_at)):
        for rule in rules:
            match = match_rule(rule, plan.event, plan.detections)
            if match is None:
                continue
            conditions, object_type = match
            dedup_key = render_dedup_key(rule, plan.event.camera_id, object_type)
            created_at = plan.event.created_at
            previous = last_alert.get((rule.id, dedup_key))
            cooldown = dt.timedelta(seconds=rule.cooldown_seconds)
            if previous is not None and cooldown and created_at - previous < cooldown:
                continue
            last_alert[(rule.id, dedup_key)] = created_at
            alerts.append(_alert_for(rule, plan.event, dedup_key, conditions, object_type))
    Alert.objects.bulk_create(alerts)
    return len(alerts)


def match_rule(rule: AlertRule, event: Event, detections: list[Detection]) -> tuple[list[str], str | None] | None:
    """``(matched_conditions, object_type)`` when every supported condition of ``rule`` holds, else None."""
    conditions: list[str] = []
    if rule.risk_threshold is not None:
        if event.risk_score is None or event.risk_score < rule.risk_threshold:
            return None
        conditions.append(f"risk_score >= {rule.risk_threshold}")
    if rule.camera_ids:
        if event.camera_id not in rule.camera_ids:
            return None
        conditions.append(f"camera_id in [{', '.join(map(str, rule.camera_ids))}]")
    object_type = None
    wanted_types = {str(t).lower() for t in rule.object_types or []}
    if wanted_types or rule.min_confidence is not None:
        matching = [
            d
            for d in sorted(detections, key=lambda d: d.detected_at)
            if (not wanted_types or d.object_type.lower() in wanted_types)
            and (rule.min_confidence is None or d.confidence >= rule.min_confidence)
        ]
        if not matching:
            return None
        object_type = matching[0].object_type
        if wanted_types:
            conditions.append(f"object_type in [{', '.join(map(str, rule.object_types))}]")
        if rule.min_confidence is not None:
            conditions.append(f"confidence >= {rule.min_confidence!r}")
    return conditions or ["no_conditions"], object_type


def render_dedup_key(rule: AlertRule, camera_id: str, object_type: str | None) -> str:
    """The rule's template with ``{camera_id}``, ``{rule_id}``, ``{severity}``, ``{object_type}`` (CONTRACT §5.4)."""
    values = {"camera_id": camera_id, "rule_id": str(rule.id), "severity": rule.severity, "object_type": object_type}
    template = rule.dedup_key_template or "{camera_id}:{rule_id}"
    key = _TEMPLATE_VARIABLE.sub(lambda match: values[match.group(1)] or "none", template)
    return _DEDUP_UNSAFE.sub("_", key)[:255]


def _alert_for(rule: AlertRule, event: Event, dedup_key: str, conditions: list[str], object_type: str | None):
    return Alert(
        kind=AlertKind.EVENT,
        rule=rule,
        event=event,
        camera_id=event.camera_id,
        severity=rule.severity,
        status=AlertStatus.PENDING,
        dedup_key=dedup_key,
        channels=[],
        metadata={
            "rule_name": rule.name,
            "matched_conditions": conditions,
            "object_type": object_type,
            "matched_zone_ids": [],
            "seeded": True,
        },
        created_at=event.created_at,
        updated_at=event.created_at,
    )


# --- media ----------------------------------------------------------------------------------------------------


def _write_media(rng: random.Random, plans: list[_PlannedEvent]) -> list[Path]:
    """One JPEG per detection, written atomically; fills ``plan.files``. Returns the paths written."""
    written: list[Path] = []
    backgrounds: dict[str, object] = {}
    try:
        for plan in plans:
            camera = plan.event.camera
            if camera.id not in backgrounds:
                camera.resolved_folder.mkdir(parents=True, exist_ok=True)
                backgrounds[camera.id] = _background(rng)
            for detection in plan.detections:
                data = _render_frame(backgrounds[camera.id], camera, detection)
                path = Path(detection.file_path)
                _write_atomically(path, data)
                written.append(path)
                plan.files.append(
                    IngestedFile(
                        camera=camera,
                        path=str(path),
                        sha256=hashlib.sha256(data).hexdigest(),
                        size_bytes=len(data),
                        media_type="image",
                        mime_type="image/jpeg",
                        source=FileSource.SEED,
                        status=FileStatus.PROCESSED,
                        detection_count=1,
                        received_at=detection.detected_at,
                        processed_at=detection.detected_at,
                    )
                )
    except BaseException:
        _remove_files(written)
        raise
    return written


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)


def _remove_files(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            logger.warning("Could not remove demo file %s", path)


def _background(rng: random.Random):
    """A synthetic scene: sky, lawn, a house and a path, with sensor noise so the JPEG has real texture."""
    from PIL import Image, ImageDraw

    sky_top = (rng.randint(60, 120), rng.randint(110, 160), rng.randint(170, 230))
    image = Image.new("RGB", (IMAGE_WIDTH, IMAGE_HEIGHT))
    draw = ImageDraw.Draw(image)
    horizon = int(IMAGE_HEIGHT * 0.4)
    for y in range(IMAGE_HEIGHT):
        if y < horizon:
            fade = y / horizon
            colour = tuple(int(c + (235 - c) * fade * 0.6) for c in sky_top)
        else:
            fade = (y - horizon) / (IMAGE_HEIGHT - horizon)
            colour = (int(70 + 40 * fade), int(110 + 50 * fade), int(50 + 20 * fade))
        draw.line([(0, y), (IMAGE_WIDTH, y)], fill=colour)
    house_x = rng.randint(80, IMAGE_WIDTH - 520)
    draw.rectangle([house_x, horizon - 170, house_x + 420, horizon + 60], fill=(170, 150, 130), outline=(90, 70, 60))
    draw.polygon(
        [(house_x - 30, horizon - 170), (house_x + 210, horizon - 290), (house_x + 450, horizon - 170)],
        fill=(120, 60, 50),
    )
    draw.rectangle([house_x + 180, horizon - 60, house_x + 240, horizon + 60], fill=(90, 60, 40))
    draw.polygon(
        [
            (house_x + 180, horizon + 60),
            (house_x + 240, horizon + 60),
            (IMAGE_WIDTH // 2 + 160, IMAGE_HEIGHT),
            (IMAGE_WIDTH // 2 - 160, IMAGE_HEIGHT),
        ],
        fill=(150, 145, 135),
    )
    noise = Image.effect_noise((IMAGE_WIDTH // 2, IMAGE_HEIGHT // 2), 64).resize((IMAGE_WIDTH, IMAGE_HEIGHT))
    return Image.blend(image, noise.convert("RGB"), 0.06)


def _render_frame(background, camera: Camera, detection: Detection) -> bytes:
    from PIL import ImageDraw

    image = background.copy()
    draw = ImageDraw.Draw(image)
    x, y, w, h = detection.bbox_x, detection.bbox_y, detection.bbox_width, detection.bbox_height
    colour = _BOX_COLOURS.get(detection.object_type, (255, 255, 255))
    body = tuple(max(0, c - 90) for c in colour)
    if detection.object_type in ("car", "truck", "bus", "motorcycle", "bicycle"):
        draw.rounded_rectangle([x + 4, y + h // 4, x + w - 4, y + h - 4], radius=max(4, h // 8), fill=body)
    else:
        draw.ellipse([x + w // 4, y + 2, x + 3 * w // 4, y + max(6, h // 4)], fill=body)
        draw.rectangle([x + w // 5, y + h // 4, x + 4 * w // 5, y + h - 2], fill=body)
    draw.rectangle([x, y, x + w - 1, y + h - 1], outline=colour, width=3)
    label = f"{detection.object_type} {detection.confidence:.2f}"
    label_y = max(0, y - 16)
    text_colour = (0, 0, 0) if colour == (255, 255, 255) else (255, 255, 255)
    draw.rectangle([x, label_y, x + 8 * len(label) + 6, label_y + 14], fill=colour)
    draw.text((x + 3, label_y + 1), label, fill=text_colour)
    stamp = f"{camera.name}  {timezone.localtime(detection.detected_at):%Y-%m-%d %H:%M:%S}"
    draw.rectangle([8, 8, 16 + 7 * len(stamp), 28], fill=(0, 0, 0))
    draw.text((12, 12), stamp, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


# --- clearing -------------------------------------------------------------------------------------------------


@transaction.atomic
def demo_clear(*, keep_cameras: bool, actor: Actor) -> dict:
    """Delete pipeline and event data (and cameras unless ``keep_cameras``); configuration and history stay.

    Returns ``{cameras_deleted, events_deleted, detections_deleted, alerts_deleted, batches_deleted,
    entities_deleted, failed_jobs_deleted}``. Tables are emptied child-first with single DELETE statements, so
    the work does not depend on the size of the data or on database-level cascades.
    """
    newest_detection_id = Detection.objects.aggregate(newest=Max("id"))["newest"]
    _raw_delete(Delivery.objects.all())
    alerts = _raw_delete(Alert.objects.all())
    _raw_delete(EventFeedback.objects.all())
    _raw_delete(EventDetection.objects.all())
    _raw_delete(EventAudit.objects.all())
    events = _raw_delete(Event.objects.all())
    Entity.objects.filter(primary_detection__isnull=False).update(primary_detection=None)
    detections = _raw_delete(Detection.objects.all())
    entities = _raw_delete(Entity.objects.all())
    batches = _raw_delete(Batch.objects.all())
    _raw_delete(IngestedFile.objects.all())
    failed_jobs = _raw_delete(FailedJob.objects.all())
    _raw_delete(ActivityBaseline.objects.all())
    _raw_delete(ClassBaseline.objects.all())
    cameras = 0 if keep_cameras else _delete_cameras()
    result = {
        "cameras_deleted": cameras,
        "events_deleted": events,
        "detections_deleted": detections,
        "alerts_deleted": alerts,
        "batches_deleted": batches,
        "entities_deleted": entities,
        "failed_jobs_deleted": failed_jobs,
    }
    audit_record(
        actor, "data_cleared", "system", None, details={"parameters": {"keep_cameras": keep_cameras}, "counts": result}
    )
    invalidate_counts("events", "detections", "alerts")
    if newest_detection_id is not None:
        transaction.on_commit(lambda: _remove_thumbnails(newest_detection_id))
    logger.info("Cleared data: %s", result)
    return result


def _delete_cameras() -> int:
    from alerts.models import NotificationPreference, QuietHours

    _raw_delete(Zone.objects.all())
    _raw_delete(NotificationPreference.objects.filter(camera__isnull=False))
    _raw_delete(QuietHours.objects.filter(camera__isnull=False))
    return _raw_delete(Camera.objects.all())


def _raw_delete(queryset) -> int:
    return queryset._raw_delete(queryset.db) or 0


_THUMBNAIL_NAME = re.compile(r"^(\d+)_thumb\.jpg$")


def _remove_thumbnails(newest_detection_id: int) -> None:
    """Thumbnails of the deleted detections (``<id>_thumb.jpg`` with id ≤ the newest id at clear time)."""
    folder = Path(settings.HSI_DATA_DIR) / "thumbnails"
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = _THUMBNAIL_NAME.match(entry.name)
        if match and int(match.group(1)) <= newest_detection_id:
            try:
                entry.unlink(missing_ok=True)
            except OSError:
                logger.warning("Could not remove thumbnail %s", entry)
