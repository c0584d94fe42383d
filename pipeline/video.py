"""Video frames for detection (CONTRACT §4.4 step 1), read with OpenCV.

- ``sample_video(path)``: one frame every ``VIDEO_FRAME_INTERVAL_SECONDS`` from 0 s, at most ``VIDEO_MAX_FRAMES``,
  plus the duration, FourCC codec and size. Frames are read in order (``grab`` every frame, ``retrieve`` only the
  sampled ones; no seeking, so times are exact for constant-frame-rate files and reading stops after the last
  sample); without a usable frame rate the container's timestamps are used. Each sample is the frame nearest to
  its time, at or after it (within half a frame).
- ``collapse_video_detections(per_frame, per_class)``: per class, the ``per_class`` highest-confidence detections
  from distinct frames, in frame order.
- ``read_frame_at(path, seconds)``: one frame (for thumbnails and snapshots), or None.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from django.conf import settings

from hsi.resilience import PipelineError
from pipeline.detectors.base import Frame, RawDetection

JPEG_QUALITY = 90
SEQUENTIAL_SEEK_LIMIT = 600  # read_frame_at grabs up to this many frames instead of seeking


@dataclass
class VideoSample:
    """Sampled frames and properties. ``duration`` is frame count / fps; when the container does not report both,
    it is the time just after the last frame read (a lower bound when sampling stopped early)."""

    frames: list[Frame]
    duration: float
    codec: str
    width: int
    height: int
    fps: float = 0.0
    frame_count: int = 0


def fourcc_string(value: float) -> str:
    """The FourCC code (e.g. ``mp4v``, ``avc1``) of OpenCV's ``CAP_PROP_FOURCC`` value; ``''`` when unknown."""
    code = int(value) if value and math.isfinite(value) else 0
    if code <= 0:
        return ""
    text = "".join(chr((code >> (8 * index)) & 0xFF) for index in range(4))
    return text.strip("\x00 ").strip() if text.isprintable() else ""


def encode_jpeg(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR array
        raise PipelineError("cannot encode a video frame as JPEG", error_type="unreadable", retryable=False)
    return encoded.tobytes()


def make_frame(path: str, pixels: np.ndarray, seconds: float, *, index: int, camera_id: str = "") -> Frame:
    stem = os.path.splitext(os.path.basename(path))[0] or "video"
    return Frame(
        data=encode_jpeg(pixels),
        filename=f"{stem}_f{index:03d}.jpg",
        mime_type="image/jpeg",
        camera_id=camera_id,
        frame_time_seconds=round(seconds, 3),
        _pixels=pixels,
    )


def _usable_fps(capture: cv2.VideoCapture) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if fps and math.isfinite(fps) and 0 < fps < 1000 else 0.0


def _frame_times(capture: cv2.VideoCapture, fps: float) -> Iterator[float]:
    """The time in seconds of each frame, grabbing (not decoding) one frame per step."""
    index = 0
    while capture.grab():
        yield index / fps if fps else max(capture.get(cv2.CAP_PROP_POS_MSEC), 0.0) / 1000.0
        index += 1


def _open(path: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise PipelineError(f"cannot open video {path}", error_type="unreadable", retryable=False)
    return capture


def sample_video(path: str, *, camera_id: str = "") -> VideoSample:
    """The sampled frames and properties of the video at ``path``.

    Raises ``PipelineError(error_type="unreadable", retryable=False)`` when OpenCV cannot open it or read a
    first frame.
    """
    interval = float(settings.VIDEO_FRAME_INTERVAL_SECONDS)
    max_frames = int(settings.VIDEO_MAX_FRAMES)
    capture = _open(path)
    try:
        fps = _usable_fps(capture)
        frame_count = int(max(capture.get(cv2.CAP_PROP_FRAME_COUNT), 0) or 0)
        codec = fourcc_string(capture.get(cv2.CAP_PROP_FOURCC))
        frames: list[Frame] = []
        last_time = 0.0
        next_time = 0.0
        epsilon = 0.5 / fps if fps else 1e-3
        for seconds in _frame_times(capture, fps):
            last_time = seconds
            if seconds + epsilon < next_time:
                continue
            ok, pixels = capture.retrieve()
            if not ok or pixels is None:
                if not frames:
                    break
                continue
            frames.append(make_frame(path, pixels, seconds, index=len(frames), camera_id=camera_id))
            if len(frames) >= max_frames:
                break
            next_time += interval
            while next_time <= seconds + epsilon:
                next_time += interval
        if not frames:
            raise PipelineError(f"cannot read a first frame of {path}", error_type="unreadable", retryable=False)
        duration = frame_count / fps if fps and frame_count else last_time + (1 / fps if fps else 0.0)
        height, width = frames[0].pixels.shape[:2]
        return VideoSample(
            frames=frames,
            duration=round(duration, 3),
            codec=codec,
            width=int(width),
            height=int(height),
            fps=round(fps, 3),
            frame_count=frame_count,
        )
    finally:
        capture.release()


def read_frame_at(path: str, seconds: float, *, camera_id: str = "") -> Frame | None:
    """The frame shown at ``seconds`` (the first frame whose time reaches it), or None when there is none."""
    try:
        capture = _open(path)
    except PipelineError:
        return None
    try:
        fps = _usable_fps(capture)
        seconds = max(float(seconds), 0.0)
        if fps and round(seconds * fps) > SEQUENTIAL_SEEK_LIMIT:
            return _seek_frame(capture, path, seconds, fps, camera_id)
        epsilon = 0.5 / fps if fps else 1e-3
        for frame_time in _frame_times(capture, fps):
            if frame_time + epsilon >= seconds:
                ok, pixels = capture.retrieve()
                return make_frame(path, pixels, frame_time, index=0, camera_id=camera_id) if ok else None
        return None
    finally:
        capture.release()


def _seek_frame(capture: cv2.VideoCapture, path: str, seconds: float, fps: float, camera_id: str) -> Frame | None:
    index = round(seconds * fps)
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, pixels = capture.read()
    if not ok or pixels is None:
        return None
    return make_frame(path, pixels, index / fps, index=0, camera_id=camera_id)


def collapse_video_detections(
    per_frame: list[tuple[Frame, list[RawDetection]]], per_class: int
) -> list[tuple[Frame, RawDetection]]:
    """Per class, the ``per_class`` highest-confidence detections from distinct frames, in frame order.

    Each frame contributes at most its best detection of a class; ties go to the earlier frame. Within a frame,
    kept detections keep the order the detector returned them in.
    """
    best: dict[str, dict[int, tuple[int, RawDetection]]] = {}
    for frame_index, (_, detections) in enumerate(per_frame):
        for position, detection in enumerate(detections):
            by_frame = best.setdefault(detection.object_type, {})
            current = by_frame.get(frame_index)
            if current is None or detection.confidence > current[1].confidence:
                by_frame[frame_index] = (position, detection)
    chosen: list[tuple[int, int, RawDetection]] = []
    for by_frame in best.values():
        ranked = sorted(by_frame.items(), key=lambda item: (-item[1][1].confidence, item[0]))
        chosen.extend((frame_index, position, detection) for frame_index, (position, detection) in ranked[:per_class])
    chosen.sort(key=lambda item: (item[0], item[1]))
    return [(per_frame[frame_index][0], detection) for frame_index, _, detection in chosen]
