"""Entity re-identification (CONTRACT §4.10): embeddings of detections and linking them to entities."""

from __future__ import annotations

import datetime as dt
import math
import threading

import numpy as np
import pytest
from django.db import connection, connections, transaction

from events.entities import (
    HSV_MODEL,
    detection_embedding,
    entities_link,
    entities_match,
    entities_save,
    entity_type_for,
)
from events.models import Detection, Entity
from tests.factories import CameraFactory, DetectionFactory, EntityFactory

NOW = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)
MODEL = "reid-test-v1"
RED, BLUE, GREEN = (0, 0, 255), (255, 0, 0), (0, 255, 0)  # BGR


def solid(colour, width: int = 64, height: int = 64) -> np.ndarray:
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:, :] = colour
    return frame


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def at(minutes: float) -> dt.datetime:
    return NOW + dt.timedelta(minutes=minutes)


def cosine(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- detection_embedding ------------------------------------------------------------------------------------------


def test_entity_types_follow_the_contract_classes():
    assert entity_type_for("person") == "person"
    assert {entity_type_for(c) for c in ("car", "truck", "bus", "motorcycle", "bicycle")} == {"vehicle"}
    assert {entity_type_for(c) for c in ("dog", "cat", "bird", "horse", "sheep", "cow", "bear")} == {"animal"}
    assert entity_type_for("Person") == "person"
    assert entity_type_for("umbrella") is None and entity_type_for("motion") is None


def test_histogram_embedding_has_256_bins_l2_normalised():
    frame = np.random.default_rng(1).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)

    vector, model = detection_embedding("person", (10, 20, 80, 90), frame, None, "rtdetr")

    assert model == HSV_MODEL
    assert len(vector) == 256
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-9)
    assert min(vector) >= 0.0


def test_a_single_colour_fills_one_bin_of_16_hue_4_saturation_4_value():
    vector, _ = detection_embedding("person", (0, 0, 32, 32), solid(RED), None, "m")

    # Pure red: hue 0 (bin 0), saturation 255 (bin 3), value 255 (bin 3) → flat index 0·16 + 3·4 + 3.
    assert vector[15] == pytest.approx(1.0)
    assert sum(1 for v in vector if v) == 1


def test_two_colours_in_equal_parts_share_the_mass_of_two_bins():
    frame = np.concatenate([solid(RED, 32, 64), solid(BLUE, 32, 64)], axis=1)

    vector, _ = detection_embedding("car", (0, 0, 64, 64), frame, None, "m")

    nonzero = sorted(v for v in vector if v)
    assert nonzero == pytest.approx([1 / math.sqrt(2)] * 2)


def test_histogram_ignores_arrangement_and_crop_size():
    left_right = np.concatenate([solid(RED, 32, 64), solid(GREEN, 32, 64)], axis=1)
    top_bottom = np.concatenate([solid(GREEN, 128, 64), solid(RED, 128, 64)], axis=0)

    a, _ = detection_embedding("dog", (0, 0, 64, 64), left_right, None, "m")
    b, _ = detection_embedding("dog", (0, 0, 128, 128), top_bottom, None, "m")

    assert a == pytest.approx(b)


def test_only_the_bbox_crop_counts():
    frame = solid(BLUE, 100, 100)
    frame[20:60, 30:70] = RED

    vector, _ = detection_embedding("person", (30, 20, 40, 40), frame, None, "m")

    assert vector[15] == pytest.approx(1.0)


def test_a_bbox_reaching_outside_the_frame_is_clamped():
    frame = solid(RED, 40, 40)

    vector, _ = detection_embedding("person", (20, 20, 100, 100), frame, None, "m")  # 20×20 inside the frame

    assert vector[15] == pytest.approx(1.0)
    assert detection_embedding("person", (30, 30, 100, 100), frame, None, "m") is None  # 10×10 inside


@pytest.mark.parametrize(("width", "height", "embedded"), [(16, 16, True), (15, 40, False), (40, 15, False)])
def test_crops_smaller_than_16_by_16_get_no_embedding(width, height, embedded):
    result = detection_embedding("person", (0, 0, width, height), solid(RED), None, "m")

    assert (result is not None) is embedded


def test_a_reduced_frame_gives_the_histogram_of_the_same_crop():
    frame = solid(BLUE, 400, 400)
    frame[80:240, 120:280] = RED
    frame[80:160, 120:280] = GREEN
    quarter = frame[::4, ::4].copy()  # the frame as a 1/4-scale JPEG decode would give it

    full, _ = detection_embedding("person", (120, 80, 160, 160), frame, None, "m")
    reduced, _ = detection_embedding("person", (120, 80, 160, 160), quarter, None, "m", pixel_scale=0.25)

    assert cosine(full, reduced) > 0.99


@pytest.mark.parametrize(("size", "embedded"), [(16, True), (15, False)])
def test_the_minimum_crop_is_measured_in_source_pixels_on_a_reduced_frame(size, embedded):
    quarter = solid(RED, 100, 100)  # a 400×400 source at 1/4

    result = detection_embedding("person", (40, 40, size, size), quarter, None, "m", pixel_scale=0.25)

    assert (result is not None) is embedded


def test_the_detector_embedding_wins_and_carries_the_detector_model():
    provided = [0.5, -0.25, 2.0, 1.0]

    assert detection_embedding("person", (0, 0, 4, 4), solid(RED), provided, "rtdetr-reid") == (provided, "rtdetr-reid")
    assert detection_embedding("person", (0, 0, 4, 4), None, provided, "") == (provided, "detector")


@pytest.mark.parametrize("provided", [[], [0.0, 0.0], [float("nan"), 1.0], ["x", 1.0]])
def test_an_unusable_detector_embedding_falls_back_to_the_histogram(provided):
    vector, model = detection_embedding("person", (0, 0, 32, 32), solid(RED), provided, "rtdetr")

    assert model == HSV_MODEL and vector[15] == pytest.approx(1.0)


def test_classes_without_an_entity_type_get_no_embedding():
    assert detection_embedding("umbrella", (0, 0, 32, 32), solid(RED), [1.0, 0.0], "m") is None
    assert detection_embedding("motion", (0, 0, 32, 32), solid(RED), None, "m") is None


def test_no_pixels_and_no_detector_embedding_gives_none():
    assert detection_embedding("person", (0, 0, 32, 32), None, None, "m") is None


def test_greyscale_and_bgra_pixels_are_accepted():
    grey = np.full((32, 32), 200, dtype=np.uint8)
    bgra = np.dstack([solid(RED, 32, 32), np.full((32, 32), 255, dtype=np.uint8)])

    assert detection_embedding("person", (0, 0, 32, 32), grey, None, "m") is not None
    assert detection_embedding("person", (0, 0, 32, 32), bgra, None, "m")[0][15] == pytest.approx(1.0)


# --- entities_link ------------------------------------------------------------------------------------------------


def known_entity(vector: list[float] | None = None, **fields) -> Entity:
    """An entity of ``MODEL`` seen at ``NOW`` unless told otherwise."""
    vector = fields.pop("vector", vector)
    fields.setdefault("embedding_model", MODEL)
    fields.setdefault("last_seen_at", NOW)
    return EntityFactory(embedding=vector, embedding_dim=len(vector), **fields)


def sighting(camera, vector, *, minutes: float = 0, confidence: float = 0.8, object_type: str = "person"):
    return DetectionFactory(
        camera=camera, embedding=vector, detected_at=at(minutes), confidence=confidence, object_type=object_type
    )


@pytest.mark.django_db
def test_the_same_object_seen_twice_becomes_one_entity():
    front, drive = CameraFactory(id="front"), CameraFactory(id="drive")
    first = sighting(front, unit(1, 0.1, 0), minutes=0, confidence=0.7)
    second = sighting(drive, unit(1, 0.12, 0.01), minutes=5, confidence=0.95)

    entities_link([[(first, MODEL)]], now=at(0))
    entities_link([[(second, MODEL)]], now=at(5))

    [entity] = Entity.objects.all()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.entity_id == second.entity_id == entity.id
    assert first.entity_similarity is None  # created by it: nothing was matched
    assert second.entity_similarity == pytest.approx(cosine(unit(1, 0.1, 0), unit(1, 0.12, 0.01)))
    assert entity.entity_type == "person"
    assert entity.embedding_model == MODEL and entity.embedding_dim == 3
    assert entity.detection_count == 2
    assert entity.first_seen_at == at(0) and entity.last_seen_at == at(5)
    assert entity.cameras_seen == ["front", "drive"]
    assert entity.primary_detection_id == second.id  # the higher confidence


@pytest.mark.django_db
def test_the_entity_embedding_is_the_renormalised_running_mean():
    camera = CameraFactory()
    old = unit(1, 0, 0)
    new = unit(0.9, math.sqrt(1 - 0.81), 0)
    entity = known_entity(old, last_seen_at=at(-10))
    detection = sighting(camera, [v * 7 for v in new])  # magnitude does not matter

    entities_link([[(detection, MODEL)]], now=NOW)

    entity.refresh_from_db()
    mixed = 0.8 * np.asarray(old) + 0.2 * np.asarray(new)
    assert entity.embedding == pytest.approx(list(mixed / np.linalg.norm(mixed)))
    assert math.isclose(float(np.linalg.norm(entity.embedding)), 1.0)
    assert entity.detection_count == 2
    assert entity.cameras_seen == [camera.id]


@pytest.mark.django_db
def test_entities_keep_their_unit_vector_in_float32_and_older_rows_get_theirs_when_seen_again():
    camera = CameraFactory()
    older = known_entity(unit(1, 0, 0), last_seen_at=at(-10))  # written without the unit vector
    detection = sighting(camera, unit(1, 0.05, 0))
    stranger = sighting(camera, unit(0, 0, 1), minutes=1)

    entities_link([[(detection, MODEL)]], now=NOW)  # matched through the JSON embedding of the older row
    entities_link([[(stranger, MODEL)]], now=at(1))

    older.refresh_from_db()
    new = Entity.objects.exclude(pk=older.pk).get()
    for entity in (older, new):
        stored = np.frombuffer(bytes(entity.embedding_unit), dtype="<f4")
        assert stored == pytest.approx(entity.embedding, abs=1e-6)
    assert Detection.objects.get(pk=detection.pk).entity_id == older.id


@pytest.mark.django_db
def test_matching_reads_the_unit_vector_not_the_json():
    camera = CameraFactory()
    entity = known_entity(unit(1, 0, 0), last_seen_at=at(-10))
    Entity.objects.filter(pk=entity.pk).update(embedding_unit=np.asarray(unit(0, 1, 0), dtype="<f4").tobytes())
    detection = sighting(camera, unit(0, 1, 0))

    entities_link([[(detection, MODEL)]], now=NOW)

    detection.refresh_from_db()
    assert detection.entity_id == entity.id and detection.entity_similarity == pytest.approx(1.0)


@pytest.mark.django_db
def test_an_entity_whose_stored_unit_vector_is_damaged_is_no_candidate():
    camera = CameraFactory()
    damaged = known_entity(unit(1, 0, 0), last_seen_at=at(-10))
    Entity.objects.filter(pk=damaged.pk).update(embedding_unit=b"\x00\x00\x80?")  # one float for three
    detection = sighting(camera, unit(1, 0, 0))

    entities_link([[(detection, MODEL)]], now=NOW)

    detection.refresh_from_db()
    assert detection.entity_id is not None and detection.entity_id != damaged.id


@pytest.mark.django_db
def test_a_lower_confidence_sighting_keeps_the_primary_detection():
    camera = CameraFactory()
    best = sighting(camera, unit(1, 0, 0), confidence=0.99)
    entity = known_entity(unit(1, 0, 0), primary_detection=best, cameras_seen=[camera.id])
    later = sighting(camera, unit(1, 0, 0), minutes=1, confidence=0.6)

    entities_link([[(later, MODEL)]], now=at(1))

    entity.refresh_from_db()
    assert entity.primary_detection_id == best.id
    assert entity.cameras_seen == [camera.id]  # not duplicated


@pytest.mark.django_db
def test_different_colours_become_two_entities():
    camera = CameraFactory()
    red_frame, blue_frame = solid(RED), solid(BLUE)
    red_vector, model = detection_embedding("person", (0, 0, 64, 64), red_frame, None, "rtdetr")
    blue_vector, _ = detection_embedding("person", (0, 0, 64, 64), blue_frame, None, "rtdetr")
    red, blue = sighting(camera, red_vector), sighting(camera, blue_vector, minutes=1)

    entities_link([[(red, model)]], now=at(0))
    entities_link([[(blue, model)]], now=at(1))

    assert Entity.objects.count() == 2
    red.refresh_from_db()
    blue.refresh_from_db()
    assert red.entity_id != blue.entity_id
    assert set(Entity.objects.values_list("embedding_model", flat=True)) == {HSV_MODEL}


@pytest.mark.django_db
def test_the_same_colours_seen_again_link_through_the_histogram():
    camera = CameraFactory()
    frame = np.concatenate([solid(RED, 32, 64), solid(BLUE, 32, 64)], axis=1)
    vector, model = detection_embedding("person", (0, 0, 64, 64), frame, None, "rtdetr")
    again, _ = detection_embedding("person", (0, 0, 64, 64), frame[:, ::-1], None, "rtdetr")
    first, second = sighting(camera, vector), sighting(camera, again, minutes=2)

    entities_link([[(first, model)]], now=at(0))
    entities_link([[(second, model)]], now=at(2))

    second.refresh_from_db()
    assert Entity.objects.count() == 1
    assert second.entity_similarity == pytest.approx(1.0)


@pytest.mark.django_db
@pytest.mark.parametrize(("hours_ago", "linked"), [(23.9, True), (24.1, False)])
def test_entities_last_seen_outside_the_window_are_not_matched(hours_ago, linked):
    camera = CameraFactory()
    entity = known_entity(unit(1, 0, 0), last_seen_at=NOW - dt.timedelta(hours=hours_ago))
    detection = sighting(camera, unit(1, 0, 0))

    entities_link([[(detection, MODEL)]], now=NOW)

    detection.refresh_from_db()
    assert (detection.entity_id == entity.id) is linked
    assert Entity.objects.count() == (1 if linked else 2)


@pytest.mark.django_db
def test_the_window_follows_the_setting(settings):
    settings.REID_WINDOW_HOURS = 1
    entity = known_entity(unit(1, 0, 0), last_seen_at=at(-90))
    detection = sighting(CameraFactory(), unit(1, 0, 0))

    entities_link([[(detection, MODEL)]], now=NOW)

    detection.refresh_from_db()
    assert detection.entity_id != entity.id


@pytest.mark.django_db
def test_vectors_of_another_model_or_size_never_match():
    camera = CameraFactory()
    other_model = known_entity(unit(1, 0, 0), embedding_model="other", last_seen_at=NOW)
    other_size = known_entity(unit(1, 0, 0, 0), last_seen_at=NOW)
    detection = sighting(camera, unit(1, 0, 0))

    entities_link([[(detection, MODEL)]], now=NOW)

    detection.refresh_from_db()
    assert detection.entity_id not in (other_model.id, other_size.id)
    assert Entity.objects.count() == 3
    other_model.refresh_from_db()
    other_size.refresh_from_db()
    assert other_model.detection_count == other_size.detection_count == 1


@pytest.mark.django_db
def test_an_entity_of_another_type_never_matches():
    camera = CameraFactory()
    car = known_entity(entity_type="vehicle", vector=unit(1, 0, 0))
    detection = sighting(camera, unit(1, 0, 0), object_type="person")

    entities_link([[(detection, MODEL)]], now=NOW)

    detection.refresh_from_db()
    assert detection.entity_id != car.id
    assert detection.entity.entity_type == "person"


@pytest.mark.django_db
@pytest.mark.parametrize(("similarity", "linked"), [(0.86, True), (0.84, False)])
def test_the_similarity_threshold_decides(similarity, linked):
    entity = known_entity(unit(1, 0, 0), last_seen_at=NOW)
    detection = sighting(CameraFactory(), [similarity, math.sqrt(1 - similarity**2), 0])

    entities_link([[(detection, MODEL)]], now=NOW)

    detection.refresh_from_db()
    assert (detection.entity_id == entity.id) is linked


@pytest.mark.django_db
def test_within_one_frame_an_entity_links_to_at_most_one_detection_the_most_similar():
    camera = CameraFactory()
    entity = known_entity(unit(1, 0, 0), last_seen_at=NOW)
    close = sighting(camera, unit(1, 0.2, 0))
    closer = sighting(camera, unit(1, 0.1, 0))

    entities_link([[(close, MODEL), (closer, MODEL)]], now=NOW)

    close.refresh_from_db()
    closer.refresh_from_db()
    assert closer.entity_id == entity.id
    assert close.entity_id not in (None, entity.id)
    entity.refresh_from_db()
    assert entity.detection_count == 2  # the factory's 1 + the closer one


@pytest.mark.django_db
def test_greedy_matching_takes_the_best_pair_first():
    camera = CameraFactory()
    a = known_entity(unit(1, 0, 0), last_seen_at=NOW)
    b = known_entity(unit(1, 0.5, 0), last_seen_at=NOW)
    # x is closest to a (0.995) but also near b; y is near both; greedy: x→a first, then y→b.
    x = sighting(camera, unit(1, 0.1, 0))
    y = sighting(camera, unit(1, 0.35, 0))

    entities_link([[(y, MODEL), (x, MODEL)]], now=NOW)

    x.refresh_from_db()
    y.refresh_from_db()
    assert (x.entity_id, y.entity_id) == (a.id, b.id)
    assert Entity.objects.count() == 2


@pytest.mark.django_db
def test_later_frames_link_to_entities_created_by_earlier_frames_of_the_same_call():
    camera = CameraFactory()
    frames = [[(sighting(camera, unit(1, 0.01 * n, 0), minutes=n), MODEL)] for n in range(4)]

    entities_link(frames, now=at(4))

    [entity] = Entity.objects.all()
    assert entity.detection_count == 4
    assert entity.last_seen_at == at(3) and entity.first_seen_at == at(0)
    assert Detection.objects.filter(entity=entity).count() == 4


@pytest.mark.django_db
def test_two_detections_of_one_frame_never_merge_into_one_new_entity():
    camera = CameraFactory()
    twins = [(sighting(camera, unit(1, 0, 0)), MODEL), (sighting(camera, unit(1, 0, 0)), MODEL)]

    entities_link([twins], now=NOW)

    assert Entity.objects.count() == 2


@pytest.mark.django_db
def test_detections_without_embedding_or_entity_type_are_left_alone():
    camera = CameraFactory()
    plain = DetectionFactory(camera=camera, embedding=None)
    umbrella = DetectionFactory(camera=camera, embedding=unit(1, 0, 0), object_type="umbrella")

    entities_link([[(plain, MODEL), (umbrella, MODEL)]], now=NOW)

    assert Entity.objects.count() == 0
    assert Detection.objects.filter(entity__isnull=False).count() == 0


@pytest.mark.django_db
def test_nothing_happens_when_reid_is_disabled(settings):
    settings.REID_ENABLED = False
    detection = sighting(CameraFactory(), unit(1, 0, 0))

    entities_link([[(detection, MODEL)]], now=NOW)

    assert Entity.objects.count() == 0


@pytest.mark.django_db
def test_one_candidate_query_per_entity_type_whatever_the_number_of_detections(django_assert_num_queries):
    camera = CameraFactory()
    for n in range(5):
        known_entity(unit(1, n, 0), last_seen_at=NOW)
        known_entity(entity_type="vehicle", vector=unit(0, 1, n), last_seen_at=NOW)
    frames = [
        [
            (sighting(camera, unit(1, n % 5, 0.01)), MODEL),
            (sighting(camera, unit(0, 1, n % 5), object_type="car"), MODEL),
            (sighting(camera, unit(n, 0, 1), object_type="truck"), MODEL),
        ]
        for n in range(8)
    ]

    # both advisory locks in one statement + 2 candidate queries + lock the matched entities + insert new entities
    # + update entities + update the changed primary detections + update detections
    with django_assert_num_queries(8):
        entities_link(frames, now=NOW)

    assert Detection.objects.filter(entity__isnull=True).count() == 0


# --- Concurrency (two workers, real transactions) -------------------------------------------------------------------


def _link_in_thread(camera_id, vector, started: threading.Event, linked: threading.Event | None, release=None):
    try:
        with transaction.atomic():
            detection = DetectionFactory(camera_id=camera_id, embedding=vector, detected_at=NOW)
            started.set()
            entities_link([[(detection, MODEL)]], now=NOW)
            if linked is not None:
                linked.set()
            if release is not None:
                release()
    finally:
        connection.close()


def _wait_for_a_blocked_lock(timeout: float = 10.0) -> None:
    """Poll PostgreSQL until some backend waits for a lock (the second worker is blocked behind the first)."""
    import time

    deadline = time.monotonic() + timeout
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the second worker never waited for the first one's lock")


def _run_two_workers(camera_id: str, vector: list[float]) -> None:
    """Worker A links and keeps its transaction open until worker B is blocked on A's locks; then A commits."""
    a_started, a_linked, b_started = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def guarded(target, *args):
        try:
            target(*args)
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    def release_when_b_waits():
        b_started.wait(10)
        _wait_for_a_blocked_lock()

    worker_a = threading.Thread(
        target=guarded, args=(_link_in_thread, camera_id, vector, a_started, a_linked, release_when_b_waits)
    )
    worker_b = threading.Thread(target=guarded, args=(_link_in_thread, camera_id, vector, b_started, None))
    worker_a.start()
    assert a_linked.wait(10)
    worker_b.start()
    worker_a.join(20)
    worker_b.join(20)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_two_workers_linking_to_one_entity_lose_no_update():
    camera = CameraFactory()
    entity = known_entity(unit(1, 0, 0), last_seen_at=NOW, cameras_seen=[])

    _run_two_workers(camera.id, unit(1, 0.05, 0))

    entity.refresh_from_db()
    assert entity.detection_count == 3
    assert Entity.objects.count() == 1
    assert Detection.objects.filter(entity=entity).count() == 2
    assert entity.cameras_seen == [camera.id]


@pytest.mark.django_db(transaction=True)
def test_two_workers_seeing_a_newcomer_at_once_create_one_entity():
    camera = CameraFactory()

    _run_two_workers(camera.id, unit(0, 1, 0))

    [entity] = Entity.objects.all()
    assert entity.detection_count == 2
    assert Detection.objects.filter(entity=entity).count() == 2


# --- Concurrent deletes while a file is being linked (the pipeline's match → insert → save order) ------------------


def _unsaved_sighting(camera, vector, confidence: float) -> Detection:
    """A detection as the pipeline holds it before its INSERT: no id yet, embedding set."""
    return Detection(
        camera=camera,
        file_path="/x.jpg",
        file_type="image/jpeg",
        media_type="image",
        detected_at=NOW,
        object_type="person",
        confidence=confidence,
        bbox_x=1,
        bbox_y=1,
        bbox_width=50,
        bbox_height=50,
        embedding=vector,
        created_at=NOW,
    )


def _in_thread(action) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run():
        try:
            action()
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


@pytest.mark.django_db(transaction=True)
def test_a_camera_deleted_while_a_file_links_to_its_entity_waits_and_breaks_nothing():
    from cameras.services import camera_delete
    from system.services import Actor

    # Given an entity whose best detection is on camera A, and a weaker sighting of it on camera B being linked
    camera_a, camera_b = CameraFactory(id="cam_a"), CameraFactory(id="cam_b")
    best = DetectionFactory(camera=camera_a, confidence=0.99, detected_at=NOW)
    entity = known_entity(unit(1, 0, 0), primary_detection=best, cameras_seen=["cam_a"])

    with transaction.atomic():
        newcomer = _unsaved_sighting(camera_b, unit(1, 0, 0), 0.6)
        changes = entities_match([[(newcomer, MODEL)]], now=NOW)
        # When camera A is deleted meanwhile (its cascade clears the entity's primary detection)
        deleter, errors = _in_thread(lambda: camera_delete("cam_a", actor=Actor.system()))
        _wait_for_a_blocked_lock()
        Detection.objects.bulk_create([newcomer])
        entities_save(changes)
    deleter.join(20)

    # Then the file's transaction committed, and the delete ran after it
    assert not errors, errors
    assert newcomer.entity_id == entity.id
    entity.refresh_from_db()
    assert (entity.detection_count, entity.primary_detection_id) == (2, None)
    assert list(Detection.objects.values_list("camera_id", "entity_id")) == [("cam_b", entity.id)]


@pytest.mark.django_db(transaction=True)
def test_an_entity_deleted_while_a_file_is_matched_to_it_gives_the_sighting_a_new_entity():
    # Given an entity that an operator is deleting (their transaction holds the row, not committed yet)
    camera = CameraFactory(id="cam_c")
    doomed = known_entity(unit(1, 0, 0), cameras_seen=["cam_c"])
    deleting, commit = threading.Event(), threading.Event()

    def delete_then_commit():
        with transaction.atomic():
            Entity.objects.filter(pk=doomed.pk).delete()
            deleting.set()
            assert commit.wait(20)

    deleter, errors = _in_thread(delete_then_commit)
    assert deleting.wait(10)

    # When a file's sighting of it is matched (the candidate read still sees the row), then the delete commits
    with transaction.atomic():
        newcomer = _unsaved_sighting(camera, unit(1, 0, 0), 0.6)
        releaser, _ = _in_thread(lambda: (_wait_for_a_blocked_lock(), commit.set()))
        changes = entities_match([[(newcomer, MODEL)]], now=NOW)
        Detection.objects.bulk_create([newcomer])
        entities_save(changes)
    deleter.join(20)
    releaser.join(20)

    # Then the sighting got an entity of its own, and the file's transaction committed
    assert not errors, errors
    [entity] = Entity.objects.all()
    assert entity.pk != doomed.pk and newcomer.entity_id == entity.pk
    assert (entity.detection_count, entity.primary_detection_id, newcomer.entity_similarity) == (1, newcomer.id, None)
