"""Common post-processing of every backend's detections (CONTRACT §4.3, §10).

Labels are lowercased and trimmed (an empty label is dropped); box corners are clamped to the frame, so
``(-10, -20, 50, 60)`` becomes ``(0, 0, 40, 40)``; boxes left with width or height ≤ 0 are dropped; detections
below the confidence threshold are dropped and counted as filtered.
"""

from __future__ import annotations

import dataclasses

from django.conf import settings

from pipeline.detectors.base import RawDetection


def clamp_box(
    x: int, y: int, width: int, height: int, frame_width: int, frame_height: int
) -> tuple[int, int, int, int]:
    """Clamp the corners of ``(x, y, width, height)`` to the frame; the result may have width or height ≤ 0."""
    x1, y1 = max(0, x), max(0, y)
    x2, y2 = x + width, y + height
    if frame_width > 0:
        x2 = min(frame_width, x2)
    if frame_height > 0:
        y2 = min(frame_height, y2)
    return x1, y1, x2 - x1, y2 - y1


def postprocess(
    detections: list[RawDetection], width: int, height: int, threshold: float | None = None
) -> tuple[list[RawDetection], int]:
    """(kept detections, number dropped for low confidence). ``threshold`` defaults to the setting."""
    if threshold is None:
        threshold = settings.DETECTION_CONFIDENCE_THRESHOLD
    kept: list[RawDetection] = []
    filtered = 0
    for detection in detections:
        label = detection.object_type.strip().lower()
        x, y, box_width, box_height = clamp_box(
            detection.x, detection.y, detection.width, detection.height, width, height
        )
        if not label or box_width <= 0 or box_height <= 0:
            continue
        if detection.confidence < threshold:
            filtered += 1
            continue
        kept.append(dataclasses.replace(detection, object_type=label, x=x, y=y, width=box_width, height=box_height))
    return kept, filtered
