"""Pure ingest rules: accepted and ignored names (CONTRACT §4.1), content sniffing and upload magic (§4.2, §6.5),
upload names (§6.5), the §4.2 validation table, and the watcher's debounce/stability tracker (§4.1)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from pipeline.ingest import (
    camera_folder_of,
    is_accepted_path,
    magic_matches_extension,
    media_type_for,
    sanitise_upload_name,
    sniff_mime_type,
    validate_media,
)
from pipeline.ingest.rules import relative_parts
from pipeline.watcher import Settled, StabilityTracker
from tests.images import jpeg_bytes, png_bytes, write_video
from tests.integration.ingest_support import (
    FakeClock,
    bomb_png,
    junk_jpeg,
    small_jpeg,
    truncated_jpeg,
    unreadable_mp4,
)

ROOT = Path("/export/foscam")

JPEG = jpeg_bytes()
PNG = png_bytes()
MP4_HEAD = struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00"
MOV_HEAD = struct.pack(">I", 20) + b"ftypqt  \x00\x00\x02\x00"
MKV_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81"
AVI_HEAD = b"RIFF\x24\x10\x00\x00AVI LIST"


# --- §4.1 names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", "image"),
        ("a.JPEG", "image"),
        ("a.Png", "image"),
        ("clip.mp4", "video"),
        ("clip.MKV", "video"),
        ("clip.avi", "video"),
        ("clip.mov", "video"),
        ("a.gif", None),
        ("a.webp", None),
        ("notes.txt", None),
        ("jpg", None),
    ],
)
def test_media_type_comes_from_the_extension_case_insensitively(name, expected):
    assert media_type_for(f"/x/{name}") == expected


@pytest.mark.parametrize(
    "relative",
    ["front_porch/2024/12/26/a.jpg", "front_porch/a.JPG", "garage/clip.mov", "Back Yard/deep/er/still/b.png"],
)
def test_files_inside_a_camera_folder_are_accepted(relative):
    assert is_accepted_path(ROOT / relative, ROOT)


@pytest.mark.parametrize(
    "relative",
    [
        "a.jpg",  # directly in the root
        ".front/a.jpg",  # hidden camera folder
        "front/.thumbs/a.jpg",  # hidden folder below
        "front/.a.jpg",  # hidden file
        "front/a.jpg.tmp",
        "front/a.jpg.part",
        "front/a.jpg.filepart",
        "front/a.jpg.crdownload",
        "front/a.jpg~",
        "front/a.JPG.PART",
        "front/a.gif",
        "front/readme",
    ],
)
def test_ignored_names_are_not_accepted(relative):
    assert not is_accepted_path(ROOT / relative, ROOT)


def test_paths_outside_the_root_are_not_accepted():
    assert not is_accepted_path("/elsewhere/front/a.jpg", ROOT)
    assert not is_accepted_path(ROOT / "front/../../etc/a.jpg", ROOT)
    assert relative_parts("/elsewhere/a.jpg", ROOT) is None


def test_the_camera_folder_is_the_first_component_below_the_root():
    assert camera_folder_of(ROOT / "front_porch/2024/12/26/a.jpg", ROOT) == "front_porch"
    assert camera_folder_of(ROOT / "a.jpg", ROOT) is None
    assert camera_folder_of("/elsewhere/front/a.jpg", ROOT) is None


def test_a_root_reached_through_a_symlink_maps_the_same_folders(tmp_path):
    real_root = tmp_path / "real"
    (real_root / "front").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real_root)
    assert camera_folder_of(real_root / "front" / "a.jpg", link) == "front"
    assert is_accepted_path(link / "front" / "a.jpg", real_root)


# --- sniffing and magic ---------------------------------------------------------------------------------------------


def test_mime_types_come_from_the_content(tmp_path):
    mp4 = write_video(tmp_path / "clip.mp4").read_bytes()
    assert sniff_mime_type(JPEG[:16]) == "image/jpeg"
    assert sniff_mime_type(PNG[:16]) == "image/png"
    assert sniff_mime_type(mp4[:16]) == "video/mp4"
    assert sniff_mime_type(MOV_HEAD) == "video/quicktime"
    assert sniff_mime_type(MKV_HEAD) == "video/x-matroska"
    assert sniff_mime_type(AVI_HEAD) == "video/x-msvideo"
    assert sniff_mime_type(b"GIF89a\x01\x00") == "image/gif"
    assert sniff_mime_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_mime_type(b"hello world, not media") == ""
    assert sniff_mime_type(b"") == ""


@pytest.mark.parametrize(
    ("head", "extension"),
    [
        (JPEG[:16], ".jpg"),
        (JPEG[:16], ".JPEG"),
        (PNG[:16], ".png"),
        (MP4_HEAD, ".mp4"),
        (MOV_HEAD, ".mov"),
        (MP4_HEAD, ".mov"),
        (MKV_HEAD, ".mkv"),
        (AVI_HEAD, ".avi"),
    ],
)
def test_leading_bytes_matching_the_extension_family_pass(head, extension):
    assert magic_matches_extension(head, extension)


@pytest.mark.parametrize(
    ("head", "extension"),
    [
        (PNG[:16], ".jpg"),
        (JPEG[:16], ".png"),
        (MKV_HEAD, ".mp4"),
        (MP4_HEAD, ".mkv"),
        (b"RIFF\x24\x10\x00\x00WAVEfmt ", ".avi"),
        (b"", ".jpg"),
        (JPEG[:16], ".gif"),
    ],
)
def test_leading_bytes_of_another_family_fail(head, extension):
    assert not magic_matches_extension(head, extension)


# --- upload names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("front.jpg", "front.jpg"),
        ("my photo (1).JPG", "my_photo__1_.JPG"),
        ("Café-2024_12.png", "Caf_-2024_12.png"),
        ("../../etc/passwd.jpg", "passwd.jpg"),
        ("C:\\Users\\cam\\snap.jpg", "snap.jpg"),
        ("", "upload"),
    ],
)
def test_upload_names_keep_only_safe_characters(name, expected):
    assert sanitise_upload_name(name) == expected


def test_long_upload_names_are_cut_to_100_characters_keeping_the_extension():
    name = sanitise_upload_name("x" * 300 + ".jpeg")
    assert len(name) == 100 and name.endswith(".jpeg") and name.startswith("xxx")


# --- §4.2 validation table ------------------------------------------------------------------------------------------


def _check(tmp_path: Path, name: str, data: bytes) -> str | None:
    path = tmp_path / name
    path.write_bytes(data)
    return validate_media(path, media_type=media_type_for(name), size=len(data))


def test_valid_images_and_videos_pass(tmp_path):
    assert _check(tmp_path, "a.jpg", JPEG) is None
    assert _check(tmp_path, "a.png", PNG) is None
    video = write_video(tmp_path / "clip.mp4")
    assert validate_media(video, media_type="video", size=video.stat().st_size) is None


def test_each_check_of_the_table_names_its_reason(tmp_path, settings):
    assert _check(tmp_path, "empty.jpg", b"") == "empty"
    assert _check(tmp_path, "small.jpg", small_jpeg()) == "too_small"
    assert _check(tmp_path, "bomb.png", bomb_png()) == "decompression_bomb"
    assert _check(tmp_path, "junk.jpg", junk_jpeg()) == "unreadable"
    assert _check(tmp_path, "cut.jpg", truncated_jpeg()) == "truncated"
    assert _check(tmp_path, "cut.png", PNG[: len(PNG) // 2]) == "truncated"
    assert _check(tmp_path, "junk.mp4", unreadable_mp4()) == "unreadable"
    settings.MAX_IMAGE_BYTES = len(JPEG) - 1
    assert _check(tmp_path, "big.jpg", JPEG) == "too_large"


def test_checks_run_in_the_contract_order(tmp_path, settings):
    # A small junk file is too small before it is unreadable; a huge bomb is too large before it is a bomb.
    assert _check(tmp_path, "tiny.jpg", junk_jpeg(size=2_000)) == "too_small"
    settings.MAX_IMAGE_BYTES = 10_500
    assert _check(tmp_path, "bomb.png", bomb_png()) == "too_large"
    # A truncated file whose header claims too many pixels is a bomb before it is truncated.
    settings.MAX_IMAGE_BYTES = 26214400
    settings.MAX_IMAGE_PIXELS = 640 * 480 - 1
    assert _check(tmp_path, "cut.jpg", truncated_jpeg()) == "decompression_bomb"


def test_max_image_pixels_and_pillows_own_bomb_warning_both_reject(tmp_path, settings):
    settings.MAX_IMAGE_PIXELS = 640 * 480
    assert _check(tmp_path, "ok.jpg", JPEG) is None
    settings.MAX_IMAGE_PIXELS = 640 * 480 - 1
    assert _check(tmp_path, "over.jpg", JPEG) == "decompression_bomb"
    # Allowed by the setting, but above Pillow's own limit (~89.5 M pixels): its warning counts as an error.
    settings.MAX_IMAGE_PIXELS = 500_000_000
    assert _check(tmp_path, "bomb.png", bomb_png()) == "decompression_bomb"


def test_validation_refuses_a_file_that_is_neither_image_nor_video(tmp_path):
    with pytest.raises(ValueError, match="not a media type"):
        _check(tmp_path, "notes.txt", b"hello")


def test_video_size_limits_are_separate_from_image_limits(tmp_path, settings):
    video = write_video(tmp_path / "clip.mp4")
    size = video.stat().st_size
    settings.MIN_IMAGE_BYTES = size + 1  # never applies to videos
    assert validate_media(video, media_type="video", size=size) is None
    settings.MAX_VIDEO_BYTES = size - 1
    assert validate_media(video, media_type="video", size=size) == "too_large"


# --- the stability tracker -------------------------------------------------------------------------------------------


@pytest.fixture
def clock():
    return FakeClock()


def tracker_for(clock: FakeClock, *, debounce=0.5, stability=2.0, timeout=30.0) -> StabilityTracker:
    return StabilityTracker(debounce=debounce, stability=stability, timeout=timeout, clock=clock)


def test_a_file_is_stable_after_the_debounce_and_an_unchanged_stability_period(tmp_path, clock):
    path = str(tmp_path / "a.jpg")
    Path(path).write_bytes(b"x" * 100)
    tracker = tracker_for(clock)
    tracker.touch(path)
    assert tracker.tick().stable == [] and len(tracker) == 1
    clock.advance(0.5)  # debounce over: first poll records size and mtime
    assert tracker.tick().stable == []
    clock.advance(1.5)
    assert tracker.tick().stable == []
    clock.advance(0.5)  # unchanged for 2.0 s
    settled = tracker.tick()
    assert settled.stable == [path] and settled.unstable == [] and len(tracker) == 0


def test_polls_happen_every_half_second_after_the_debounce(tmp_path, clock):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x")
    tracker = tracker_for(clock, stability=1.0)
    tracker.touch(str(path))
    clock.advance(0.5)
    tracker.tick()  # first poll at t=0.5, next due at t=1.0
    clock.advance(0.2)
    path.write_bytes(b"xy")  # changes between polls are seen at the next poll
    tracker.tick()
    clock.advance(0.3)
    assert tracker.tick().stable == []  # t=1.0: change seen, stability restarts
    clock.advance(0.5)
    assert tracker.tick().stable == []  # t=1.5: unchanged for 0.5 s
    clock.advance(0.4)
    assert tracker.tick().stable == []  # t=1.9: between polls
    clock.advance(0.1)
    assert tracker.tick().stable == [str(path)]  # t=2.0: unchanged for 1.0 s


def test_a_growing_file_restarts_the_stability_period(tmp_path, clock):
    path = tmp_path / "a.mp4"
    path.write_bytes(b"x" * 10)
    tracker = tracker_for(clock, debounce=0.0)
    tracker.add(str(path))
    for step in range(6):
        tracker.tick()
        with path.open("ab") as handle:
            handle.write(b"y" * (step + 1))
        clock.advance(0.5)
    assert tracker.tick().stable == []
    clock.advance(2.0)
    assert tracker.tick().stable == [str(path)]


def test_events_during_the_debounce_push_it_back(tmp_path, clock):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x")
    tracker = tracker_for(clock, debounce=0.5, stability=0.0)
    tracker.touch(str(path))
    clock.advance(0.4)
    tracker.touch(str(path))
    clock.advance(0.4)
    assert tracker.tick().stable == []  # 0.4 s after the last event
    clock.advance(0.1)
    assert tracker.tick().stable == [str(path)]


def test_a_scan_does_not_push_back_a_running_debounce(tmp_path, clock):
    path = str(tmp_path / "a.jpg")
    Path(path).write_bytes(b"x")
    tracker = tracker_for(clock, debounce=0.5, stability=0.0)
    assert tracker.add(path) is True
    clock.advance(0.4)
    assert tracker.add(path) is False
    clock.advance(0.1)
    assert tracker.tick().stable == [path]


def test_a_file_still_changing_at_the_timeout_is_unstable(tmp_path, clock):
    path = tmp_path / "a.mp4"
    path.write_bytes(b"")
    tracker = tracker_for(clock, debounce=0.5, stability=2.0, timeout=5.0)
    tracker.touch(str(path))
    unstable = []
    for step in range(20):
        clock.advance(0.5)
        with path.open("ab") as handle:
            handle.write(b"z" * (step + 1))
        settled = tracker.tick()
        unstable += settled.unstable
        assert settled.stable == []
    assert unstable == [str(path)] and len(tracker) == 0


def test_a_file_whose_events_never_stop_times_out_during_the_debounce(tmp_path, clock):
    path = str(tmp_path / "a.mp4")
    Path(path).write_bytes(b"x")
    tracker = tracker_for(clock, debounce=0.5, timeout=3.0)
    tracker.touch(path)
    for _ in range(7):  # an event every 0.4 s: the debounce never ends
        clock.advance(0.4)
        tracker.touch(path)
        assert tracker.tick().unstable == []
    clock.advance(0.4)  # 3.2 s after the first event
    tracker.touch(path)
    assert tracker.tick().unstable == [path]


def touched_file(tmp_path, clock, name: str = "a.jpg") -> tuple[Path, StabilityTracker]:
    """A one-byte file under ``tmp_path`` and a tracker (debounce 0.5 s, stability 2 s, timeout 3 s) that just saw
    its first event."""
    path = tmp_path / name
    path.write_bytes(b"x")
    tracker = tracker_for(clock, debounce=0.5, stability=2.0, timeout=3.0)
    tracker.touch(str(path))
    return path, tracker


def test_a_stable_file_wins_over_a_late_tick_past_the_timeout(tmp_path, clock):
    path, tracker = touched_file(tmp_path, clock)
    clock.advance(0.5)
    tracker.tick()
    clock.advance(60)  # the loop was busy for a minute; the file never changed
    assert tracker.tick().stable == [str(path)]


def test_a_file_first_looked_at_after_the_timeout_still_gets_its_stability_period(tmp_path, clock):
    path, tracker = touched_file(tmp_path, clock)
    clock.advance(60)  # a burst kept the loop busy: the first poll comes long after the timeout

    first = tracker.tick()
    clock.advance(2.0)
    second = tracker.tick()

    assert (first.stable, first.unstable) == ([], [])
    assert (second.stable, second.unstable) == ([str(path)], [])


def test_a_file_first_looked_at_late_that_is_still_changing_is_unstable(tmp_path, clock):
    path, tracker = touched_file(tmp_path, clock, "a.mp4")
    clock.advance(60)
    assert tracker.tick().unstable == []

    path.write_bytes(b"xy")
    clock.advance(0.5)

    assert tracker.tick().unstable == [str(path)]


def test_one_late_event_near_the_timeout_does_not_make_a_file_unstable(tmp_path, clock):
    path, tracker = touched_file(tmp_path, clock)
    clock.advance(1.0)
    tracker.tick()  # polled: the debounce ended
    clock.advance(1.9)
    tracker.touch(str(path))  # one more event (an attribute change) at 2.9 s
    clock.advance(0.2)

    assert tracker.tick().unstable == []  # 3.1 s after the first event, but not a run of events
    clock.advance(0.3)
    assert tracker.tick() == Settled()  # 3.4 s: the debounce ended, the stability measurement restarts
    clock.advance(2.0)
    assert tracker.tick().stable == [str(path)]


def test_vanished_files_and_directories_leave_the_tracker(tmp_path, clock):
    gone = str(tmp_path / "gone.jpg")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    tracker = tracker_for(clock, debounce=0.0)
    tracker.touch(gone)
    tracker.touch(str(folder))
    assert str(folder) in tracker
    settled = tracker.tick()
    assert sorted(settled.vanished) == sorted([gone, str(folder)]) and len(tracker) == 0


def test_a_touch_after_a_poll_restarts_the_stability_measurement(tmp_path, clock):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x")
    os.utime(path, ns=(1, 1))
    tracker = tracker_for(clock, debounce=0.0, stability=1.0)
    tracker.touch(str(path))
    tracker.tick()
    clock.advance(0.5)
    tracker.touch(str(path))  # an event: the earlier measurement no longer counts
    tracker.tick()
    clock.advance(0.5)
    assert tracker.tick().stable == []
    clock.advance(0.5)
    assert tracker.tick().stable == [str(path)]
