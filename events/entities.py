"""Entity re-identification (CONTRACT §4.10): one embedding per detection, matched to recent entities.

``detection_embedding`` picks the vector of one detection (the detector's, else an HSV colour histogram of its
crop). ``entities_match`` links each detection to the most similar recent entity of its type (same embedding model
and size, cosine ≥ threshold, greedy one-to-one within a frame) or plans a new one; ``entities_save`` writes the
entity rows once the detections are saved (``entities_link`` does both for saved detections). On PostgreSQL
linking is serialised per entity type with a transaction-scoped advisory lock held until the caller commits, so
two workers neither lose an update nor both create an entity for the same newcomer; the matched entities alone are
row-locked, so a concurrent delete waits. Entity writes name their columns, so an operator's label or trust change
on the same row is never overwritten.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Case, F, When
from django.utils import timezone

from .models import Detection, Entity, EntityType

ENTITY_TYPES: dict[str, str] = {
    "person": EntityType.PERSON,
    **dict.fromkeys(("car", "truck", "bus", "motorcycle", "bicycle"), EntityType.VEHICLE),
    **dict.fromkeys(("dog", "cat", "bird", "horse", "sheep", "cow", "bear"), EntityType.ANIMAL),
}
HSV_MODEL = "hsv-hist-256"
HSV_BINS = (16, 4, 4)
MIN_CROP_PIXELS = 16
OLD_WEIGHT = 0.8
NEW_WEIGHT = 0.2
_LOCK_NAMESPACE = 0x48534945  # "HSIE"
_TYPE_ORDER = (EntityType.PERSON, EntityType.VEHICLE, EntityType.ANIMAL)


def entity_type_for(object_type: str) -> str | None:
    """The entity type of a detection class, None for classes that get no entity."""
    value = ENTITY_TYPES.get(object_type.lower())
    return str(value) if value is not None else None


# --- Embeddings ---------------------------------------------------------------------------------------------------


def detection_embedding(
    object_type: str,
    bbox: tuple[int, int, int, int],
    pixels_bgr: np.ndarray | None,
    provided: list[float] | None,
    detector_model: str,
    *,
    pixel_scale: float = 1.0,
) -> tuple[list[float], str] | None:
    """(vector, model) for one detection: the detector's embedding (model = detector model name), else the
    256-bin HSV histogram of the ``(x, y, width, height)`` crop. None for classes without an entity type, and
    for crops under 16×16 source pixels when the detector gave no embedding. ``pixel_scale`` is the size of
    ``pixels_bgr`` relative to the frame the bbox is measured in (a JPEG decoded at 1/4 size: 0.25)."""
    if entity_type_for(object_type) is None:
        return None
    vector = _usable_vector(provided)
    if vector is not None:
        return vector, detector_model or "detector"
    if pixels_bgr is None:
        return None
    crop = _crop(pixels_bgr, bbox, pixel_scale)
    if crop is None:
        return None
    histogram = hsv_histogram(crop)
    return (histogram, HSV_MODEL) if histogram is not None else None


def hsv_histogram(crop_bgr: np.ndarray) -> list[float] | None:
    """16 hue × 4 saturation × 4 value bins (OpenCV ``calcHist``), L2-normalised."""
    import cv2

    if crop_bgr.ndim == 2:
        crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_GRAY2BGR)
    elif crop_bgr.shape[2] == 4:
        crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_BGRA2BGR)
    hsv = cv2.cvtColor(np.ascontiguousarray(crop_bgr), cv2.COLOR_BGR2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(HSV_BINS), [0, 180, 0, 256, 0, 256]).flatten()
    unit = _normalised(histogram.astype(np.float64))
    return None if unit is None else unit.tolist()


def _crop(pixels: np.ndarray, bbox: tuple[int, int, int, int], scale: float = 1.0) -> np.ndarray | None:
    x, y, width, height = (int(v) for v in bbox)
    frame_height, frame_width = pixels.shape[:2]
    source_width, source_height = frame_width / scale, frame_height / scale
    if min(source_width, x + width) - max(0, x) < MIN_CROP_PIXELS:
        return None
    if min(source_height, y + height) - max(0, y) < MIN_CROP_PIXELS:
        return None
    left, top = max(0, round(x * scale)), max(0, round(y * scale))
    right, bottom = min(frame_width, round((x + width) * scale)), min(frame_height, round((y + height) * scale))
    if right <= left or bottom <= top:
        return None
    return pixels[top:bottom, left:right]


def _usable_vector(values: Sequence[float] | None) -> list[float] | None:
    """The detector's vector as floats, or None when absent, empty, non-finite or all zeros."""
    if not values:
        return None
    try:
        vector = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in vector) or not any(vector):
        return None
    return vector


def _normalised(vector: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm) or norm == 0.0:
        return None
    return vector / norm


# --- Linking --------------------------------------------------------------------------------------------------------


@dataclass
class _Sighting:
    detection: Detection
    entity_type: str
    model: str
    vector: np.ndarray  # L2-normalised

    @property
    def key(self) -> tuple[str, str, int]:
        return self.entity_type, self.model, len(self.vector)


@dataclass
class _Pool:
    """The candidate entities of one (type, model, dimension), with their unit embeddings as matrix rows.

    A stored candidate is only its id and vector: most of the hundreds compared are never matched, and the rows of
    the matched ones are read (and locked) once matching is done. An entity created by this call is the object."""

    entities: list[Entity | uuid.UUID] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)

    def add(self, entity: Entity | uuid.UUID, vector: np.ndarray) -> None:
        self.entities.append(entity)
        self.rows.append(vector)

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        if not self.rows:
            return np.zeros((len(vectors), 0))
        return np.clip(vectors @ np.vstack(self.rows).T, -1.0, 1.0)


@dataclass
class EntityChanges:
    created: dict = field(default_factory=dict)  # entity id -> Entity (not yet in the database)
    updated: dict = field(default_factory=dict)  # entity id -> Entity (existing rows)
    detections: list[Detection] = field(default_factory=list)
    primaries: dict = field(default_factory=dict)  # entity id -> its best detection among the new ones
    pending: list = field(default_factory=list)  # (stored entity id, sighting) matched, in order, not yet applied
    means: dict = field(default_factory=dict)  # stored entity id -> its running mean after this call's sightings


def entities_link(frames: list[list[tuple[Detection, str]]], *, now: dt.datetime) -> None:
    """Link the saved detections of each frame (``(detection, embedding model)``, ``embedding`` set) to entities.

    Runs inside the caller's transaction. Detections without an embedding or an entity type are skipped.
    """
    changes = entities_match(frames, now=now)
    if changes is not None:
        entities_save(changes)
        Detection.objects.bulk_update(changes.detections, ["entity", "entity_similarity"])


def entities_match(frames: list[list[tuple[Detection, str]]], *, now: dt.datetime) -> EntityChanges | None:
    """Match the detections of each frame to entities and set ``entity_id``/``entity_similarity`` on the objects;
    the entity rows are written by ``entities_save`` (None: nothing to link).

    For the pipeline, which inserts its detections already linked: match, insert the detections, then save
    (the foreign keys are checked at commit, so an entity row may follow the detections that point to it).
    Takes the per-type locks, so it must run inside the transaction that will save.
    """
    if not settings.REID_ENABLED:
        return None
    sightings = [[s for s in (_sighting(d, model) for d, model in frame) if s is not None] for frame in frames]
    flat = [s for frame in sightings for s in frame]
    if not flat:
        return None
    _lock_entity_types({s.entity_type for s in flat})
    pools = _candidate_pools(flat, now)
    changes = EntityChanges()
    threshold = settings.REID_SIMILARITY_THRESHOLD
    for frame in sightings:
        for key, group in _grouped(frame).items():
            _link_group(group, pools.setdefault(key, _Pool()), threshold, changes)
    _apply_matched(changes)
    return changes


def _apply_matched(changes: EntityChanges) -> None:
    """Read and row-lock the stored entities that were matched, then apply their sightings in order. The lock holds
    until the caller commits: a concurrent delete (of the entity, or of the camera of its primary detection) then
    waits instead of breaking this transaction's foreign keys at commit. An entity deleted since the candidates
    were read gets its sightings as new entities."""
    if not changes.pending:
        return
    matched = (
        Entity.objects.filter(pk__in={entity_id for entity_id, _ in changes.pending})
        .only(*MATCHED_FIELDS)
        .annotate(primary_confidence=F("primary_detection__confidence"))
    )
    if connection.vendor == "postgresql":
        matched = matched.select_for_update(of=("self",))
    entities = {entity.id: entity for entity in matched}
    for entity_id, sighting in changes.pending:
        entity = entities.get(entity_id)
        if entity is None:
            changes.detections.remove(sighting.detection)
            _create(sighting, _Pool(), changes)
            continue
        _apply_sighting(entity, sighting.detection, changes.means[entity_id], changes)
        changes.updated[entity_id] = entity
    changes.pending, changes.means = [], {}


def _sighting(detection: Detection, model: str) -> _Sighting | None:
    entity_type = entity_type_for(detection.object_type)
    vector = _usable_vector(detection.embedding)
    if entity_type is None or vector is None:
        return None
    unit = _normalised(np.asarray(vector, dtype=np.float64))
    return _Sighting(detection, entity_type, model, unit) if unit is not None else None


def _grouped(frame: list[_Sighting]) -> dict[tuple[str, str, int], list[_Sighting]]:
    groups: dict[tuple[str, str, int], list[_Sighting]] = {}
    for sighting in frame:
        groups.setdefault(sighting.key, []).append(sighting)
    return groups


def _lock_entity_types(entity_types: set[str]) -> None:
    """PostgreSQL: serialise linking per entity type until the transaction ends (always in the same order)."""
    if connection.vendor != "postgresql":
        return
    keys = [_TYPE_ORDER.index(entity_type) for entity_type in sorted(entity_types, key=_TYPE_ORDER.index)]
    # One statement; PostgreSQL evaluates the select list left to right, so the locks are taken in type order.
    locks = ", ".join("pg_advisory_xact_lock(%s, %s)" for _ in keys)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {locks}", [value for key in keys for value in (_LOCK_NAMESPACE, key)])


# At most this many of the most recently seen entities per type are compared with a new sighting: without a
# bound, a camera that creates many entities (noise, crowds) would load and lock every entity of the last
# REID_WINDOW_HOURS for each file, and the per-file cost would grow all day.
REID_MAX_CANDIDATES = 500


def _candidate_pools(sightings: list[_Sighting], now: dt.datetime) -> dict[tuple[str, str, int], _Pool]:
    """Recently seen entities that could match (the REID_MAX_CANDIDATES newest), one locked query per type."""
    since = now - dt.timedelta(hours=settings.REID_WINDOW_HOURS)
    wanted: dict[str, set[tuple[str, int]]] = {}
    for sighting in sightings:
        wanted.setdefault(sighting.entity_type, set()).add((sighting.model, len(sighting.vector)))
    pools: dict[tuple[str, str, int], _Pool] = {}
    for entity_type, keys in wanted.items():
        candidates = (
            Entity.objects.filter(
                entity_type=entity_type,
                last_seen_at__gte=since,
                embedding_model__in={model for model, _ in keys},
                embedding_dim__in={dim for _, dim in keys},
            )
            # the JSON only where the unit vector is missing (rows written before it)
            .annotate(legacy_embedding=Case(When(embedding_unit__isnull=True, then=F("embedding")), default=None))
            .order_by("-last_seen_at", "pk")
            .values_list("id", "embedding_model", "embedding_dim", "embedding_unit", "legacy_embedding")
        )[:REID_MAX_CANDIDATES]
        for entity_id, model, dimension, stored, legacy in candidates:
            vector = _stored_unit_vector(dimension, stored, legacy)
            if (model, dimension) in keys and vector is not None:
                pools.setdefault((entity_type, model, dimension), _Pool()).add(entity_id, vector)
    return pools


def _stored_unit_vector(dimension: int, stored, legacy) -> np.ndarray | None:
    if stored is not None:  # a unit vector of the wrong length (a damaged row) is no candidate
        if len(stored) != dimension * UNIT_DTYPE.itemsize:
            return None
        vector = np.frombuffer(bytes(stored), dtype=UNIT_DTYPE).astype(np.float64)
        return vector if np.isfinite(vector).all() else None
    values = _usable_vector(legacy)
    if values is None or len(values) != dimension:
        return None
    return _normalised(np.asarray(values, dtype=np.float64))


UNIT_DTYPE = np.dtype("<f4")


def unit_bytes(vector: np.ndarray) -> bytes:
    """``Entity.embedding_unit`` of a unit vector."""
    return np.asarray(vector, dtype=UNIT_DTYPE).tobytes()


def _link_group(group: list[_Sighting], pool: _Pool, threshold: float, changes: EntityChanges) -> None:
    """Greedy one-to-one matching of one frame's sightings of one kind; the rest become new entities."""
    similarities = pool.similarities(np.vstack([s.vector for s in group]))
    pairs = [(similarities[i, j], i, j) for i, j in zip(*np.nonzero(similarities >= threshold), strict=True)]
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    taken_sightings: set[int] = set()
    taken_entities: set[int] = set()
    for similarity, i, j in pairs:
        if i in taken_sightings or j in taken_entities:
            continue
        taken_sightings.add(i)
        taken_entities.add(j)
        _link(group[i], pool, int(j), float(similarity), changes)
    for index, sighting in enumerate(group):
        if index not in taken_sightings:
            _create(sighting, pool, changes)


def _link(sighting: _Sighting, pool: _Pool, index: int, similarity: float, changes: EntityChanges) -> None:
    """Link ``sighting`` to the pool's entity ``index``: the running mean at once (later frames compare with it),
    the rest now for an entity of this call, after ``_apply_matched`` has read the row for a stored one."""
    target, detection = pool.entities[index], sighting.detection
    # Never zero: |0.8 a + 0.2 b| >= 0.6 for unit vectors a, b (the old row is kept all the same if it were).
    mixed = _normalised(OLD_WEIGHT * pool.rows[index] + NEW_WEIGHT * sighting.vector)
    mean = mixed if mixed is not None else pool.rows[index]
    pool.rows[index] = mean
    detection.entity_similarity = similarity
    changes.detections.append(detection)
    if isinstance(target, Entity):
        detection.entity_id = target.id
        _apply_sighting(target, detection, mean, changes)
        return
    detection.entity_id = target
    changes.pending.append((target, sighting))
    changes.means[target] = mean


def _apply_sighting(entity: Entity, detection: Detection, mean: np.ndarray, changes: EntityChanges) -> None:
    entity.embedding = mean.tolist()  # written whole, never read back: the candidate was read without it
    entity.embedding_unit = unit_bytes(mean)
    entity.detection_count += 1
    entity.first_seen_at = min(entity.first_seen_at, detection.detected_at)
    entity.last_seen_at = max(entity.last_seen_at, detection.detected_at)
    if detection.camera_id not in entity.cameras_seen:
        entity.cameras_seen = [*entity.cameras_seen, detection.camera_id]
    primary_confidence = getattr(entity, "primary_confidence", None)
    if primary_confidence is None or detection.confidence > primary_confidence:
        changes.primaries[entity.id] = detection  # its id is known once it is saved
        entity.primary_confidence = detection.confidence


def _create(sighting: _Sighting, pool: _Pool, changes: EntityChanges) -> None:
    detection = sighting.detection
    entity = Entity(
        entity_type=sighting.entity_type,
        embedding=sighting.vector.tolist(),
        embedding_unit=unit_bytes(sighting.vector),
        embedding_model=sighting.model,
        embedding_dim=len(sighting.vector),
        first_seen_at=detection.detected_at,
        last_seen_at=detection.detected_at,
        detection_count=1,
        cameras_seen=[detection.camera_id],
    )
    changes.primaries[entity.id] = detection
    entity.primary_confidence = detection.confidence
    pool.add(entity, sighting.vector)
    changes.created[entity.id] = entity
    detection.entity_id = entity.id
    detection.entity_similarity = None
    changes.detections.append(detection)


SEPARATE_UPDATES_UP_TO = 3  # more changed entities than this in one file: one bulk UPDATE (a constant query count)
ENTITY_UPDATE_FIELDS = (
    "embedding",
    "embedding_unit",
    "detection_count",
    "first_seen_at",
    "last_seen_at",
    "cameras_seen",
)
# What a matched entity is read with: what a sighting adds to (its embedding is replaced by the running mean).
MATCHED_FIELDS = ("detection_count", "first_seen_at", "last_seen_at", "cameras_seen", "primary_detection")


def entities_save(changes: EntityChanges) -> None:
    """Write the entities ``entities_match`` created or changed, once their detections are saved (ids known)."""
    now = timezone.now()
    for entity_id, detection in changes.primaries.items():
        if detection.id is None:
            raise RuntimeError("entities_save runs after the matched detections are saved")
        (changes.created.get(entity_id) or changes.updated[entity_id]).primary_detection_id = detection.id
    if changes.created:
        for entity in changes.created.values():
            entity.created_at = entity.updated_at = now
        Entity.objects.bulk_create(list(changes.created.values()))
    # The primary detection is written only where it changed: an unchanged one may be going away with a camera
    # deleted meanwhile (its SET NULL waits on the row lock and must not be undone).
    updated = list(changes.updated.values())
    for entity in updated:
        entity.updated_at = now
    if len(updated) > SEPARATE_UPDATES_UP_TO:
        Entity.objects.bulk_update(updated, [*ENTITY_UPDATE_FIELDS, "updated_at"])
        new_primaries = [entity for entity in updated if entity.id in changes.primaries]
        if new_primaries:
            Entity.objects.bulk_update(new_primaries, ["primary_detection"])
        return
    for entity in updated:  # the usual one or two: plain UPDATEs cost less to build than one bulk_update CASE
        values = {name: getattr(entity, name) for name in ENTITY_UPDATE_FIELDS}
        if entity.id in changes.primaries:
            values["primary_detection_id"] = entity.primary_detection_id
        Entity.objects.filter(pk=entity.pk).update(**values, updated_at=now)
