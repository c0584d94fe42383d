"""Embedded OpenCV detector (CONTRACT §4.3): HOG people detector plus frame-difference motion, CPU only.

- **Persons**: OpenCV's default HOG + linear SVM people detector on the frame scaled down to width ≤ 640
  (win stride 8, padding 8, scale 1.05), NMS IoU 0.45, confidence = min(0.99, 1 − e^(−w)) for SVM weight w,
  class ``person``. It finds upright, mostly unoccluded people roughly 100–400 px tall in the scaled frame;
  it misses sitting, lying, small, partly hidden or top-down people, and sees no other classes.
- **Motion** (``DETECTOR_EMBEDDED_MOTION``): the frame is compared with the previous frame of the same camera
  held in this process (grayscale, width 320, Gaussian blur 21, absolute difference, threshold 25, two
  dilations). Each external contour covering ≥ 0.5 % of the frame is a ``motion`` box with confidence
  min(0.95, 0.5 + 10 × area fraction); the 5 largest are kept, then those overlapping a person box with
  IoU > 0.3 are dropped. The first frame of a camera (or the first after a change of frame size) yields no
  motion. Lighting changes, rain and camera shake count as motion.
- **Gating**: with motion enabled, HOG is skipped for a frame that has a previous frame and shows no motion,
  so a static scene costs one small difference per frame. The price: a person who stands perfectly still
  between two frames is not reported for the second one. HOG always runs for the first frame of a camera and
  when motion is disabled.

The previous frames live in a bounded, lock-protected dict keyed by camera id (least recently used cameras are
forgotten past 1,024); HOG descriptors are per thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

import cv2
import numpy as np
from django.conf import settings

from pipeline.detectors.base import Detector, DetectorResult, Frame, RawDetection
from pipeline.detectors.boxes import iou, nms

HOG_MAX_WIDTH = 640
HOG_WIN_STRIDE = (8, 8)
HOG_PADDING = (8, 8)
HOG_SCALE = 1.05
HOG_NMS_IOU = 0.45
MOTION_WIDTH = 320
MOTION_BLUR = (21, 21)
MOTION_THRESHOLD = 25
MOTION_DILATIONS = 2
MOTION_MIN_AREA_FRACTION = 0.005
MOTION_MAX_BOXES = 5
MOTION_PERSON_IOU = 0.3
MAX_CAMERAS = 1024


def hog_confidence(weight: float) -> float:
    """min(0.99, 1 − e^(−w)), never below 0."""
    return max(0.0, min(0.99, 1 - math.exp(-float(weight))))


def motion_confidence(area_fraction: float) -> float:
    return min(0.95, 0.5 + 10 * area_fraction)


def persons_from_hog(rects, weights, scale: float) -> list[RawDetection]:
    """Person detections in source pixels from HOG ``(x, y, w, h)`` rects found on a frame resized by ``scale``."""
    rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(rects) == 0:
        return []
    corners = np.column_stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]])
    persons = []
    for index in nms(corners, weights, HOG_NMS_IOU):
        x1, y1, x2, y2 = (round(value / scale) for value in corners[index])
        persons.append(RawDetection("person", hog_confidence(weights[index]), x1, y1, x2 - x1, y2 - y1))
    return persons


def motion_mask_input(pixels: np.ndarray) -> np.ndarray:
    """The blurred grayscale frame at width 320 that motion compares."""
    height, width = pixels.shape[:2]
    small_height = max(1, round(height * MOTION_WIDTH / width))
    gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if pixels.ndim == 3 else pixels
    small = cv2.resize(gray, (MOTION_WIDTH, small_height), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, MOTION_BLUR, 0)


def motion_boxes(
    previous: np.ndarray, current: np.ndarray, source_width: int, source_height: int
) -> list[RawDetection]:
    """The ≤ 5 largest ``motion`` boxes (source pixels) where ``current`` differs from ``previous``."""
    difference = cv2.absdiff(previous, current)
    _, mask = cv2.threshold(difference, MOTION_THRESHOLD, 255, cv2.THRESH_BINARY)
    mask = cv2.dilate(mask, None, iterations=MOTION_DILATIONS)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    frame_area = float(mask.shape[0] * mask.shape[1])
    scale_x, scale_y = source_width / mask.shape[1], source_height / mask.shape[0]
    found = []
    for contour in contours:
        fraction = cv2.contourArea(contour) / frame_area
        if fraction < MOTION_MIN_AREA_FRACTION:
            continue
        x, y, w, h = cv2.boundingRect(contour)
        x1, y1 = round(x * scale_x), round(y * scale_y)
        x2, y2 = round((x + w) * scale_x), round((y + h) * scale_y)
        found.append((fraction, RawDetection("motion", motion_confidence(fraction), x1, y1, x2 - x1, y2 - y1)))
    found.sort(key=lambda item: -item[0])
    return [detection for _, detection in found[:MOTION_MAX_BOXES]]


def drop_motion_on_persons(motion: list[RawDetection], persons: list[RawDetection]) -> list[RawDetection]:
    def box(detection: RawDetection) -> tuple[int, int, int, int]:
        return detection.x, detection.y, detection.width, detection.height

    return [m for m in motion if all(iou(box(m), box(p)) <= MOTION_PERSON_IOU for p in persons)]


class OpenCVDetector(Detector):
    name = "opencv"
    model = "opencv-hog"

    def __init__(self, *, motion_enabled: bool = True):
        self.motion_enabled = motion_enabled
        self._previous: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()

    @classmethod
    def from_settings(cls) -> OpenCVDetector:
        return cls(motion_enabled=settings.DETECTOR_EMBEDDED_MOTION)

    def _hog(self) -> cv2.HOGDescriptor:
        hog = getattr(self._local, "hog", None)
        if hog is None:
            hog = cv2.HOGDescriptor()
            hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
            self._local.hog = hog
        return hog

    def detect(self, frame: Frame) -> DetectorResult:
        started = time.monotonic()
        pixels = frame.pixels
        height, width = pixels.shape[:2]
        motion: list[RawDetection] = []
        run_hog = True
        if self.motion_enabled:
            previous = self._swap_previous(frame.camera_id, motion_mask_input(pixels))
            if previous is not None:
                motion = motion_boxes(previous[0], previous[1], width, height)
                run_hog = bool(motion)
        persons = self.detect_persons(pixels) if run_hog else []
        detections = persons + drop_motion_on_persons(motion, persons)
        return DetectorResult(detections, inference_ms=(time.monotonic() - started) * 1000, model=self.model)

    def _swap_previous(self, camera_id: str, current: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Store ``current`` as the camera's previous frame; return (previous, current) when comparable."""
        with self._lock:
            previous = self._previous.pop(camera_id, None)
            self._previous[camera_id] = current
            while len(self._previous) > MAX_CAMERAS:
                self._previous.popitem(last=False)
        if previous is None or previous.shape != current.shape:
            return None
        return previous, current

    def forget(self, camera_id: str) -> None:
        """Drop the camera's previous frame (its next frame is a first frame again)."""
        with self._lock:
            self._previous.pop(camera_id, None)

    def detect_persons(self, pixels: np.ndarray) -> list[RawDetection]:
        width = pixels.shape[1]
        scale = min(1.0, HOG_MAX_WIDTH / width)
        scaled = pixels
        if scale < 1.0:
            scaled = cv2.resize(pixels, (HOG_MAX_WIDTH, max(1, round(pixels.shape[0] * scale))))
        rects, weights = self._hog().detectMultiScale(
            scaled, winStride=HOG_WIN_STRIDE, padding=HOG_PADDING, scale=HOG_SCALE
        )
        return persons_from_hog(rects, weights, scale)
