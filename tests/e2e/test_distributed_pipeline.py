"""The distributed run mode end to end (CONTRACT §0.1, §4, §8.1): real processes on PostgreSQL and Redis.

A Celery worker, ``celery beat``, ``manage.py watch_cameras`` and a daphne web process run as children of the
test, with their own Redis key prefix and the test database; the detector and the LLM are the loopback fakes
running in the test process. Files written into camera folders must come out as detections, batches closed for
the right reason, and events at the risk level the analyzer's score maps to (§4.7).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.processes import Drops, assert_nothing_lost_or_duplicated, box, daytime_zone, settled, wait_for
from tests.fakes.llm_server import verdict_json

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SETTLE_TIMEOUT_SECONDS = 90
DRIVEWAY_FILES = 9
# Score the fake LLM gives each camera's batch, and the level §4.7 derives from it (default bands 29/59/84).
LLM_SCORES = {"front_door": (90, "critical"), "garage": (70, "high"), "driveway": (40, "medium"), "yard": (10, "low")}


def llm_scores_by_camera(payload: dict) -> str:
    """The fake LLM's answer: the score of the camera named in the prompt (llama.cpp or OpenAI request)."""
    text = payload.get("prompt") or " ".join(m.get("content", "") for m in payload.get("messages", []))
    for camera, (score, level) in LLM_SCORES.items():
        if f"Id: {camera}\n" in text:
            return verdict_json(score=score, level=level, summary=f"Scored for {camera}.")
    return verdict_json(score=0, level="low", summary="Unknown camera.")


@pytest.fixture
def drops(deployment):
    return Drops(deployment.foscam_root)


def test_files_dropped_into_folders_become_events_with_the_right_close_reasons_and_levels(
    deployment, drops, fake_detector, fake_llm
):
    from events.models import Event
    from pipeline.models import Batch, IngestedFile

    # Given a worker, beat, the watcher and a web process, the fake detector answering per file and the fake LLM
    # scoring per camera
    fake_detector.detect_fn = drops.detect
    fake_llm.reply_fn = llm_scores_by_camera
    deployment.settings.update(
        DETECTOR_URL=fake_detector.url, LLM_URL=fake_llm.url, LLM_BACKEND="llamacpp", TIME_ZONE=daytime_zone()
    )
    stack = deployment.start(web=True)

    # When files arrive: a person at the front door (fast path), ten cars in two files at the garage (max size),
    # one dog in the yard (idle), a bicycle at the driveway every second for 8 s (longer than the 6 s window, gaps
    # shorter than the 3 s idle timeout), plus a file with nothing in it, a file too small to be an image and a
    # byte-identical copy of an earlier file
    drops.image("front_door", "person.jpg", [box("person", 0.95)], subfolder="2026/12/02")
    cars = [box("car", 0.8, x=10 + 30 * n, width=25, height=20) for n in range(5)]
    drops.image("garage", "cars_1.jpg", cars)
    drops.image("garage", "cars_2.jpg", cars)
    first_dog = drops.image("yard", "dog.jpg", [box("dog", 0.7)])
    drops.image("yard", "empty.jpg", [])
    drops.invalid("yard", "tiny.jpg")
    for index in range(DRIVEWAY_FILES):
        if index:
            time.sleep(1.0)  # the camera's upload rhythm, not an assertion
        drops.image("driveway", f"bicycle_{index}.jpg", [box("bicycle", 0.75)])
    drops.copy(first_dog, "dog_again.jpg")

    # Then every file ends in its final state and every detection in exactly one event
    ledger = wait_for(
        settled(drops), timeout=SETTLE_TIMEOUT_SECONDS, what="the pipeline to settle", on_timeout=deployment.logs
    )
    assert_nothing_lost_or_duplicated(drops, ledger)
    assert ledger.files_by_status == {"processed": 4 + DRIVEWAY_FILES, "no_detections": 1, "invalid": 1}
    assert IngestedFile.objects.get(path__endswith="tiny.jpg").reject_reason == "too_small"
    assert not IngestedFile.objects.filter(path__endswith="dog_again.jpg").exists()

    # And each camera's batches closed for their reasons, each became one event at the level of its LLM score
    def batches_of(camera_id: str) -> list[tuple[str, int, str]]:
        rows = Batch.objects.filter(camera_id=camera_id).order_by("opened_at")
        return [(b.close_reason, b.detection_count, b.status) for b in rows]

    assert batches_of("front_door") == [("fast_path", 1, "done")]
    assert batches_of("garage") == [("max_size", 10, "done")]
    assert batches_of("yard") == [("idle", 1, "done")]
    driveway = batches_of("driveway")
    assert driveway[0][0] == "window", driveway  # the first batch ran its full window
    assert {reason for reason, _n, _status in driveway[1:]} <= {"window", "idle"}
    assert sum(n for _reason, n, _status in driveway) == DRIVEWAY_FILES
    assert {status for _reason, _n, status in driveway} == {"done"}
    for event in Event.objects.select_related("batch"):
        score, level = LLM_SCORES[event.camera_id]
        assert (event.risk_score, event.risk_level, event.analysis_status) == (score, level, "llm")
        assert event.detection_count == event.batch.detection_count == event.detection_links.count()
        assert event.is_fast_path == (event.batch.close_reason == "fast_path")
    assert Event.objects.get(camera_id="garage").object_types == "car"
    expected = ("front_door", "garage", "yard", "driveway")

    # And the cameras were registered from their folders, the thumbnails written to the data directory
    from cameras.models import Camera
    from events.models import Detection

    assert set(Camera.objects.values_list("id", flat=True)) == set(expected)
    thumbnails = [d.thumbnail_path for d in Detection.objects.all()]
    assert all(thumbnails), "every detection has a thumbnail"
    assert all(Path(p).parent == deployment.data_dir / "thumbnails" and Path(p).is_file() for p in thumbnails)

    # And the web process, another process, serves the events the worker created
    with stack.web.client() as client:
        listed = client.get("/api/events", params={"limit": 10})
    assert listed.status_code == 200
    body = listed.json()
    assert body["pagination"]["total"] == 3 + len(driveway)
    assert {(e["camera_id"], e["risk_level"]) for e in body["items"]} == {
        (camera, level) for camera, (_score, level) in LLM_SCORES.items()
    }

    # And the detector saw each distinct image once, the LLM one prompt per batch
    assert fake_detector.detect_calls == 5 + DRIVEWAY_FILES
    assert fake_llm.completion_calls == 3 + len(driveway)
