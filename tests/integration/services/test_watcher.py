"""The camera watcher (CONTRACT §4.1, §10 on §4.1, §8.3 heartbeat).

Loop logic runs on a hand-moved clock with ``run_once`` (no observer, no sleeping); the observer tests start a real
watchdog thread (inotify and polling) with short settings and wait on the database with a deadline.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone

from pipeline.models import IngestedFile
from pipeline.watcher import CameraWatcher, heartbeat_key, run_watcher
from tests.factories import CameraFactory, IngestedFileFactory
from tests.images import jpeg_bytes, write_video
from tests.integration.ingest_support import (
    FakeClock,
    broker_tasks,
    ensure_process_file_task,
    truncated_jpeg,
    wait_for,
    write,
)


@pytest.fixture(autouse=True)
def _process_file_task():
    ensure_process_file_task()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def quick(settings):
    """Contract timings, shortened so a real observer thread settles a file within about a second."""
    settings.WATCHER_DEBOUNCE_SECONDS = 0.05
    settings.FILE_STABILITY_SECONDS = 0.2
    settings.FILE_STABILITY_TIMEOUT_SECONDS = 30
    settings.WATCHER_POLL_INTERVAL_SECONDS = 0.1
    return settings


def settle(watcher: CameraWatcher, clock: FakeClock, seconds: float = 3.0, step: float = 0.5) -> None:
    """Move the clock ``seconds`` forward in ``step``s, running one loop step each time."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
        watcher.run_once()


def set_age(path: Path, minutes: float) -> Path:
    stamp = time.time() - minutes * 60
    os.utime(path, (stamp, stamp))
    return path


def paths_of_rows() -> list[str]:
    return sorted(IngestedFile.objects.values_list("path", flat=True))


# --- one loop step at a time ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_noticed_file_is_ingested_once_it_is_stable(foscam_root, clock):
    watcher = CameraWatcher(clock=clock)
    path = write(foscam_root / "porch" / "2024" / "a.jpg", jpeg_bytes(seed=1))

    watcher.notice(str(path))
    assert watcher.pending_count == 1
    settle(watcher, clock, seconds=2.0)  # debounce 0.5 s + 1.5 s of the 2.0 s stability period
    assert not IngestedFile.objects.exists()
    settle(watcher, clock, seconds=1.0)

    row = IngestedFile.objects.get()
    assert (row.path, row.status, row.source, row.camera_id) == (str(path), "pending", "watcher", "porch")
    assert watcher.pending_count == 0 and watcher.last_file_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_burst_that_settles_together_is_handed_over_in_chunks(foscam_root, clock, settings):
    settings.PIPELINE_CHUNK_FILES = 2
    watcher = CameraWatcher(clock=clock)
    paths = [write(foscam_root / "porch" / f"{n}.jpg", jpeg_bytes(seed=n)) for n in range(5)]
    for path in paths:
        watcher.notice(str(path))

    settle(watcher, clock)

    ids = [IngestedFile.objects.get(path=str(path)).id for path in paths]
    assert broker_tasks() == [
        ("pipeline.process_files", [ids[0:2]]),
        ("pipeline.process_files", [ids[2:4]]),
        ("pipeline.process_file", [ids[4]]),
    ]


@pytest.mark.django_db
def test_a_burst_whose_ingest_fails_is_ingested_file_by_file(foscam_root, clock, caplog):
    def unreadable_burst(paths, **kwargs):
        raise PermissionError("one file of the burst is unreadable")

    watcher = CameraWatcher(clock=clock, ingest_many=unreadable_burst)
    paths = [write(foscam_root / "porch" / f"{n}.jpg", jpeg_bytes(seed=40 + n)) for n in range(3)]
    for path in paths:
        watcher.notice(str(path))

    settle(watcher, clock)

    assert paths_of_rows() == sorted(str(path) for path in paths)
    assert "ingesting them one by one" in caplog.text


@pytest.mark.django_db
def test_a_file_that_fails_late_in_a_burst_is_offered_again_and_the_recorded_ones_are_not(foscam_root, clock):
    from pipeline.ingest import BurstIngestError, files_ingest

    calls = []

    def second_file_fails_once(paths, **kwargs):
        calls.append(list(paths))
        if len(calls) > 1:
            return files_ingest(paths, **kwargs)
        outcomes = files_ingest(paths[:1], **kwargs)
        raise BurstIngestError({0: outcomes[0]}, {1: OSError("the share went away")})

    watcher = CameraWatcher(clock=clock, ingest_many=second_file_fails_once)
    paths = [write(foscam_root / "porch" / f"{n}.jpg", jpeg_bytes(seed=50 + n)) for n in range(2)]
    for path in paths:
        watcher.notice(str(path))
    settle(watcher, clock)
    assert paths_of_rows() == [str(paths[0])]

    assert watcher.scan(backfill_minutes=10) == 1  # only the file that failed is queued again
    settle(watcher, clock)

    assert paths_of_rows() == sorted(str(path) for path in paths)


@pytest.mark.django_db
def test_ignored_names_are_never_queued(foscam_root, clock):
    watcher = CameraWatcher(clock=clock)
    for relative in ("a.jpg", "porch/.b.jpg", "porch/c.jpg.part", "porch/d.txt", ".trash/e.jpg"):
        watcher.notice(str(write(foscam_root / relative, jpeg_bytes(seed=2))))
    assert watcher.pending_count == 0


@pytest.mark.django_db
def test_a_directory_created_or_moved_in_is_walked(foscam_root, clock):
    watcher = CameraWatcher(clock=clock)
    folder = foscam_root / "porch" / "2024" / "12"
    write(folder / "a.jpg", jpeg_bytes(seed=3))
    write(folder / "27" / "b.png", jpeg_bytes(seed=4))
    write(folder / ".hidden" / "c.jpg", jpeg_bytes(seed=5))
    write(folder / "d.jpg.tmp", jpeg_bytes(seed=6))

    watcher.notice(str(folder), directory=True)
    settle(watcher, clock)

    assert paths_of_rows() == sorted([str(folder / "a.jpg"), str(folder / "27" / "b.png")])


@pytest.mark.django_db
def test_a_file_that_keeps_changing_is_recorded_unstable(foscam_root, clock, settings):
    settings.FILE_STABILITY_TIMEOUT_SECONDS = 5
    watcher = CameraWatcher(clock=clock)
    path = write(foscam_root / "porch" / "growing.mp4", b"\x00" * 100)
    watcher.notice(str(path))

    for step in range(12):
        with path.open("ab") as handle:
            handle.write(b"\x01" * (step + 1) * 10)
        clock.advance(0.5)
        watcher.run_once()

    row = IngestedFile.objects.get()
    assert (row.status, row.reject_reason, row.sha256) == ("invalid", "unstable", None)
    assert watcher.pending_count == 0


@pytest.mark.django_db
def test_a_later_modification_after_unstable_starts_a_new_cycle(foscam_root, clock, settings):
    settings.FILE_STABILITY_SECONDS = 0.5
    settings.FILE_STABILITY_TIMEOUT_SECONDS = 2
    watcher = CameraWatcher(clock=clock)
    data = jpeg_bytes(seed=7)
    path = write(foscam_root / "porch" / "a.jpg", data[:20_000])
    watcher.notice(str(path))
    for size in (25_000, 30_000, 35_000, 40_000, 45_000):
        path.write_bytes(data[:size])
        clock.advance(0.5)
        watcher.run_once()
    assert IngestedFile.objects.get().reject_reason == "unstable"

    path.write_bytes(data)  # the writer finishes; its modification event starts a new cycle
    watcher.notice(str(path))
    settle(watcher, clock)

    statuses = list(IngestedFile.objects.order_by("id").values_list("reject_reason", "status"))
    assert statuses == [("unstable", "invalid"), (None, "pending")]


@pytest.mark.django_db
def test_the_watcher_rechecks_a_truncated_image_once_before_rejecting_it(foscam_root, clock, settings):
    settings.FILE_STABILITY_SECONDS = 0
    watcher = CameraWatcher(clock=clock)
    path = write(foscam_root / "porch" / "cut.jpg", truncated_jpeg(seed=8))
    watcher.notice(str(path))
    settle(watcher, clock, seconds=1.0)
    assert IngestedFile.objects.get().reject_reason == "truncated"


@pytest.mark.django_db
def test_a_failing_ingest_is_offered_again_by_the_next_rescan(foscam_root, clock):
    calls = []

    def ingest_failing_once(path, **kwargs):
        from pipeline.ingest import file_ingest

        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return file_ingest(path, **kwargs)

    watcher = CameraWatcher(clock=clock, ingest=ingest_failing_once)
    path = write(foscam_root / "porch" / "a.jpg", jpeg_bytes(seed=9))
    watcher.notice(str(path))
    settle(watcher, clock)
    assert calls == [str(path)] and not IngestedFile.objects.exists()

    assert watcher.scan(10) == 1
    settle(watcher, clock)
    assert IngestedFile.objects.get().path == str(path)


@pytest.mark.django_db
def test_a_failure_to_record_an_unstable_file_leaves_it_for_the_next_rescan(foscam_root, clock, settings, caplog):
    settings.FILE_STABILITY_TIMEOUT_SECONDS = 1

    def broken_recorder(path, **kwargs):
        raise RuntimeError("database went away")

    watcher = CameraWatcher(clock=clock, record_unstable=broken_recorder)
    path = write(foscam_root / "porch" / "a.mp4", b"\x00" * 10)
    watcher.notice(str(path))
    for step in range(4):
        path.write_bytes(b"\x00" * (20 + step))
        clock.advance(0.5)
        watcher.run_once()
    assert "Could not record unstable file" in caplog.text
    assert watcher.pending_count == 0 and str(path) not in watcher._seen
    assert watcher.scan(10) == 1


# --- backfill and rescans --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_backfill_queues_only_files_modified_within_the_window(foscam_root, clock, settings):
    settings.WATCHER_BACKFILL_MINUTES = 10
    recent = write(foscam_root / "porch" / "recent.jpg", jpeg_bytes(seed=10))
    edge = set_age(write(foscam_root / "porch" / "nine_minutes.jpg", jpeg_bytes(seed=11)), 9)
    set_age(write(foscam_root / "porch" / "old.jpg", jpeg_bytes(seed=12)), 11)
    write(foscam_root / "porch" / ".hidden.jpg", jpeg_bytes(seed=13))
    write(foscam_root / "loose.jpg", jpeg_bytes(seed=14))
    watcher = CameraWatcher(clock=clock)

    assert watcher.scan(10) == 2
    settle(watcher, clock)
    assert paths_of_rows() == sorted([str(recent), str(edge)])
    assert watcher.scan(0) == 0


@pytest.mark.django_db
def test_a_scan_passes_over_dangling_links_and_folders_named_like_images(foscam_root, clock):
    (foscam_root / "porch").mkdir()
    (foscam_root / "porch" / "dangling.jpg").symlink_to(foscam_root / "porch" / "nowhere.jpg")
    (foscam_root / "porch" / "folder.jpg").mkdir()
    assert CameraWatcher(clock=clock).scan(10) == 0


@pytest.mark.django_db
def test_a_rescan_skips_files_already_handled_unchanged_without_hashing(foscam_root, clock):
    watcher = CameraWatcher(clock=clock)
    path = write(foscam_root / "porch" / "a.jpg", jpeg_bytes(seed=15))
    watcher.scan(10)
    settle(watcher, clock)
    assert IngestedFile.objects.count() == 1

    assert watcher.scan(10) == 0  # same path, size and mtime: not even queued
    path.write_bytes(jpeg_bytes(seed=16))  # new content under the same name
    assert watcher.scan(10) == 1
    settle(watcher, clock)
    assert IngestedFile.objects.count() == 2


@pytest.mark.django_db
def test_after_a_restart_files_recorded_since_their_last_change_are_not_queued(foscam_root, clock):
    camera = CameraFactory(id="porch", folder_path="porch")
    recorded = write(foscam_root / "porch" / "recorded.jpg", jpeg_bytes(seed=17))
    IngestedFileFactory(camera=camera, path=str(recorded), size_bytes=recorded.stat().st_size)
    resized = write(foscam_root / "porch" / "resized.jpg", jpeg_bytes(seed=18))
    IngestedFileFactory(camera=camera, path=str(resized), size_bytes=123)
    rewritten = write(foscam_root / "porch" / "rewritten.jpg", jpeg_bytes(seed=19))
    IngestedFileFactory(
        camera=camera,
        path=str(rewritten),
        size_bytes=rewritten.stat().st_size,
        received_at=timezone.now() - dt.timedelta(minutes=5),
    )

    watcher = CameraWatcher(clock=clock)
    assert watcher.scan(10) == 2
    assert str(recorded) not in watcher.tracker
    assert str(resized) in watcher.tracker and str(rewritten) in watcher.tracker


@pytest.mark.django_db
def test_the_periodic_rescan_finds_a_file_the_observer_missed(foscam_root, clock, settings):
    settings.WATCHER_RESCAN_SECONDS = 60
    watcher = CameraWatcher(clock=clock)  # not started: no observer reports anything
    watcher._next_rescan = clock() + 60
    path = write(foscam_root / "porch" / "missed.jpg", jpeg_bytes(seed=20))

    settle(watcher, clock, seconds=30.0, step=1.0)
    assert not IngestedFile.objects.exists() and watcher.pending_count == 0
    settle(watcher, clock, seconds=30.0, step=1.0)  # the rescan at +60 s queues it; 2.5 s later it is stable
    settle(watcher, clock, seconds=3.0)

    assert paths_of_rows() == [str(path)]


@pytest.mark.django_db
def test_the_seen_memory_forgets_files_older_than_the_window(foscam_root, clock):
    later = {"offset": 0.0}
    watcher = CameraWatcher(clock=clock, wall_clock=lambda: time.time() + later["offset"])
    path = write(foscam_root / "porch" / "a.jpg", jpeg_bytes(seed=21))
    watcher.scan(10)
    settle(watcher, clock)
    assert str(path) in watcher._seen
    later["offset"] = 30 * 60  # half an hour later the file is outside the 10-minute window
    assert watcher.scan(10) == 0
    assert str(path) not in watcher._seen


# --- upload and watcher together -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_file_the_watcher_sees_twice_under_two_names_is_one_row(foscam_root, clock):
    data = jpeg_bytes(seed=22)
    watcher = CameraWatcher(clock=clock)
    first = write(foscam_root / "porch" / "a.jpg", data)
    second = write(foscam_root / "porch" / "uploads" / "2024" / "12" / "26" / "101010000000_a.jpg", data)
    watcher.notice(str(first))
    watcher.notice(str(second))
    settle(watcher, clock)
    assert paths_of_rows() == [str(first)]


# --- heartbeat ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_heartbeat_describes_the_watcher(foscam_root, clock):
    CameraFactory(id="porch", folder_path="porch")
    CameraFactory(id="garage", folder_path=str(foscam_root / "garage"))
    CameraFactory(id="attic", folder_path="attic", enabled=False)
    CameraFactory(id="remote", folder_path="/srv/other/remote")
    watcher = CameraWatcher(clock=clock)
    watcher.notice(str(write(foscam_root / "porch" / "a.jpg", jpeg_bytes(seed=23))))

    watcher.heartbeat()

    beat = cache.get(heartbeat_key())
    assert beat["host"] == watcher.host and beat["root"] == str(foscam_root)
    assert (beat["running"], beat["mode"], beat["cameras_watched"], beat["pending_files"]) == (False, None, 2, 1)
    assert beat["last_file_at"] is None and beat["heartbeat_at"].endswith("Z")


@pytest.mark.django_db
def test_the_loop_beats_every_ten_seconds(foscam_root, clock):
    watcher = CameraWatcher(clock=clock)
    watcher.run_once()
    assert cache.get(heartbeat_key())["pending_files"] == 0
    watcher.notice(str(write(foscam_root / "porch" / "a.jpg", jpeg_bytes(seed=24))))
    clock.advance(0.1)
    watcher.run_once()
    assert cache.get(heartbeat_key())["pending_files"] == 0  # not due yet
    clock.advance(10)
    watcher.run_once()
    assert cache.get(heartbeat_key())["pending_files"] == 1


# --- a real observer thread ----------------------------------------------------------------------------------------


def start_in_thread(watcher: CameraWatcher) -> threading.Thread:
    thread = threading.Thread(target=watcher.run_forever, name="test-watcher", daemon=True)
    thread.start()
    wait_for(lambda: cache.get(heartbeat_key()), timeout=20)
    return thread


def stop_thread(watcher: CameraWatcher, thread: threading.Thread) -> None:
    watcher.stop()
    thread.join(timeout=20)
    assert not thread.is_alive()


@pytest.mark.parametrize("mode", ["native", "polling"])
@pytest.mark.django_db(transaction=True)
def test_a_real_observer_ingests_created_and_moved_in_files(mode, quick, foscam_root, tmp_path):
    watcher = CameraWatcher(mode=mode)
    thread = start_in_thread(watcher)
    try:
        assert cache.get(heartbeat_key())["mode"] == mode and watcher.mode == mode
        created = write(foscam_root / "porch" / "2024" / "created.jpg", jpeg_bytes(seed=30))
        staged = write(tmp_path / "staging" / "moved.jpg", jpeg_bytes(seed=31))
        moved = foscam_root / "porch" / "moved.jpg"
        staged.rename(moved)
        clip = write_video(foscam_root / "driveway" / "clip.mp4", seed=32)
        partial = write(foscam_root / "porch" / "upload.jpg.part", jpeg_bytes(seed=33))

        wait_for(lambda: IngestedFile.objects.count() >= 3)
        assert paths_of_rows() == sorted([str(created), str(moved), str(clip)])
        assert set(IngestedFile.objects.values_list("status", flat=True)) == {"pending"}

        final = foscam_root / "porch" / "upload.jpg"
        partial.rename(final)  # a finished download renamed to its real name
        wait_for(lambda: IngestedFile.objects.filter(path=str(final)).exists())
        assert watcher.last_file_at is not None
    finally:
        stop_thread(watcher, thread)
    assert cache.get(heartbeat_key()) is None  # withdrawn on a clean stop


@pytest.mark.django_db(transaction=True)
def test_a_missing_root_is_created_and_backfilled_files_are_ingested_at_start(quick, foscam_root, settings):
    old_root = foscam_root
    settings.FOSCAM_BASE_PATH = old_root / "not_yet"
    watcher = CameraWatcher(mode="polling")
    thread = start_in_thread(watcher)
    stop_thread(watcher, thread)
    assert (old_root / "not_yet").is_dir()

    recent = write(old_root / "not_yet" / "porch" / "a.jpg", jpeg_bytes(seed=34))
    watcher = CameraWatcher(mode="auto")
    thread = start_in_thread(watcher)
    try:
        assert watcher.mode == "native"
        wait_for(lambda: IngestedFile.objects.filter(path=str(recent)).exists())
    finally:
        stop_thread(watcher, thread)


@pytest.mark.django_db(transaction=True)
def test_a_failing_loop_step_is_logged_and_the_watcher_carries_on(quick, foscam_root, caplog):
    failures = {"left": 0}

    def clock() -> float:
        if failures["left"] and threading.current_thread().name == "test-watcher":
            failures["left"] -= 1
            raise RuntimeError("clock glitch")
        return time.monotonic()

    watcher = CameraWatcher(mode="polling", clock=clock)
    thread = start_in_thread(watcher)
    try:
        failures["left"] = 1
        wait_for(lambda: failures["left"] == 0)
        path = write(foscam_root / "porch" / "a.jpg", jpeg_bytes(seed=36))
        wait_for(lambda: IngestedFile.objects.filter(path=str(path)).exists())
    finally:
        stop_thread(watcher, thread)
    assert "Watcher step failed; continuing" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_run_watcher_stops_when_its_event_is_set(quick, foscam_root):
    stop = threading.Event()
    thread = threading.Thread(target=run_watcher, args=(stop,), daemon=True)
    thread.start()
    wait_for(lambda: cache.get(heartbeat_key()))
    write(foscam_root / "porch" / "a.jpg", jpeg_bytes(seed=35))
    wait_for(lambda: IngestedFile.objects.exists())
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive() and cache.get(heartbeat_key()) is None
