"""Video frame sampling and per-class collapsing (CONTRACT §4.4 step 1) on real MP4 files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hsi.resilience import PipelineError
from pipeline.detectors.base import Frame, RawDetection
from pipeline.video import collapse_video_detections, fourcc_string, read_frame_at, sample_video
from tests.images import noise_pixels, write_video


def source_index(frame: Frame, *, width: int, height: int, seed: int = 0, count: int) -> int:
    """Which frame ``write_video`` wrote is closest to ``frame`` (mp4v is lossy, the noise is not)."""
    differences = [
        np.abs(
            frame.pixels.astype(int)
            - cv2.cvtColor(noise_pixels(width, height, seed * 10_000 + index), cv2.COLOR_RGB2BGR).astype(int)
        ).mean()
        for index in range(count)
    ]
    return int(np.argmin(differences))


@pytest.fixture
def clip(tmp_path):
    return write_video(tmp_path / "clips" / "drive way.mp4", seconds=4.0, fps=5, width=320, height=240)


def test_one_frame_every_interval_from_zero(clip, settings):
    settings.VIDEO_FRAME_INTERVAL_SECONDS = 1.0

    sample = sample_video(str(clip))

    assert [f.frame_time_seconds for f in sample.frames] == [0.0, 1.0, 2.0, 3.0]
    assert [source_index(f, width=320, height=240, count=20) for f in sample.frames] == [0, 5, 10, 15]
    assert (sample.duration, sample.width, sample.height, sample.fps, sample.frame_count) == (4.0, 320, 240, 5.0, 20)
    assert sample.codec.lower() in {"mp4v", "fmp4"}


def test_the_default_interval_is_two_seconds(clip):
    sample = sample_video(str(clip))

    assert [f.frame_time_seconds for f in sample.frames] == [0.0, 2.0]


def test_at_most_the_configured_number_of_frames(clip, settings):
    settings.VIDEO_FRAME_INTERVAL_SECONDS = 0.2
    settings.VIDEO_MAX_FRAMES = 3

    sample = sample_video(str(clip))

    assert [f.frame_time_seconds for f in sample.frames] == [0.0, 0.2, 0.4]
    assert sample.duration == 4.0


def test_an_interval_shorter_than_a_frame_takes_every_frame(clip, settings):
    settings.VIDEO_FRAME_INTERVAL_SECONDS = 0.05

    sample = sample_video(str(clip))

    assert len(sample.frames) == 20
    assert sample.frames[-1].frame_time_seconds == 3.8


def test_frames_are_jpegs_with_their_pixels_and_the_camera(clip):
    sample = sample_video(str(clip), camera_id="drive_way")
    frame = sample.frames[1]

    decoded = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
    assert frame.data[:3] == b"\xff\xd8\xff"
    assert decoded.shape == (240, 320, 3)
    assert np.abs(decoded.astype(int) - frame.pixels.astype(int)).mean() < 6
    assert (frame.mime_type, frame.filename, frame.camera_id) == ("image/jpeg", "drive way_f001.jpg", "drive_way")
    assert (frame.width, frame.height) == (320, 240)


@pytest.mark.parametrize("content", [b"", b"this is not a video at all" * 1000])
def test_a_file_opencv_cannot_read_is_unreadable(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)

    with pytest.raises(PipelineError) as raised:
        sample_video(str(path))

    assert (raised.value.error_type, raised.value.retryable) == ("unreadable", False)


def test_a_truncated_or_missing_video_is_unreadable(clip, tmp_path):
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(clip.read_bytes()[:4096])

    for path in (truncated, tmp_path / "missing.mp4"):
        with pytest.raises(PipelineError) as raised:
            sample_video(str(path))
        assert raised.value.error_type == "unreadable"


def test_read_frame_at_returns_the_frame_shown_at_that_time(clip):
    frame = read_frame_at(str(clip), 3.0, camera_id="c")

    assert frame.frame_time_seconds == 3.0
    assert source_index(frame, width=320, height=240, count=20) == 15
    assert frame.camera_id == "c"
    assert read_frame_at(str(clip), 0).frame_time_seconds == 0.0


def test_read_frame_at_past_the_end_or_of_a_bad_file_is_none(clip, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")

    assert read_frame_at(str(clip), 10.0) is None
    assert read_frame_at(str(bad), 0) is None
    assert read_frame_at(str(tmp_path / "missing.mp4"), 0) is None


def test_read_frame_at_seeks_in_long_videos(tmp_path):
    long_clip = write_video(tmp_path / "long.mp4", seconds=13.0, fps=50, width=64, height=48)

    frame = read_frame_at(str(long_clip), 12.5)

    assert frame.frame_time_seconds == 12.5
    assert source_index(frame, width=64, height=48, count=650) == 625
    assert read_frame_at(str(long_clip), 60.0) is None


def test_fourcc_strings():
    assert fourcc_string(cv2.VideoWriter_fourcc(*"avc1")) == "avc1"
    assert fourcc_string(0) == ""
    assert fourcc_string(float("nan")) == ""
    assert fourcc_string(0x01020304) == ""


# --- collapsing -----------------------------------------------------------------------------------------------


def frames(count: int) -> list[Frame]:
    return [
        Frame(data=b"", filename=f"f{i}.jpg", mime_type="image/jpeg", frame_time_seconds=i * 2.0) for i in range(count)
    ]


def det(label: str, confidence: float, x: int = 0) -> RawDetection:
    return RawDetection(label, confidence, x, 0, 10, 10)


def test_collapse_keeps_the_best_per_class_from_distinct_frames_in_frame_order():
    f = frames(5)
    per_frame = [
        (f[0], [det("person", 0.6), det("car", 0.9)]),
        (f[1], [det("person", 0.95), det("person", 0.97, x=5)]),  # two persons in one frame: only the best counts
        (f[2], [det("person", 0.7)]),
        (f[3], [det("person", 0.99), det("car", 0.5)]),
        (f[4], []),
    ]

    collapsed = collapse_video_detections(per_frame, per_class=2)

    assert [(frame.filename, d.object_type, d.confidence) for frame, d in collapsed] == [
        ("f0.jpg", "car", 0.9),
        ("f1.jpg", "person", 0.97),
        ("f3.jpg", "person", 0.99),
        ("f3.jpg", "car", 0.5),
    ]


def test_collapse_ties_go_to_the_earlier_frame_and_fewer_frames_keep_all():
    f = frames(3)
    per_frame = [(f[0], [det("dog", 0.8)]), (f[1], [det("dog", 0.8)]), (f[2], [det("dog", 0.8)])]

    assert [frame.filename for frame, _ in collapse_video_detections(per_frame, per_class=2)] == ["f0.jpg", "f1.jpg"]
    assert len(collapse_video_detections(per_frame, per_class=5)) == 3
    assert collapse_video_detections([], per_class=5) == []
