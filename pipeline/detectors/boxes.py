"""Box arithmetic shared by the backends: IoU, greedy NMS (class-wise or not) and letterbox geometry.

Boxes are numpy arrays of corners ``[x1, y1, x2, y2]`` (float, any pixel space).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(x, y, width, height)`` boxes; 0 when either is empty."""
    ax2, ay2 = a[0] + a[2], a[1] + a[3]
    bx2, by2 = b[0] + b[2], b[1] + b[3]
    inter_w = min(ax2, bx2) - max(a[0], b[0])
    inter_h = min(ay2, by2) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def nms(corners: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, highest score first.

    A box is suppressed when its IoU with an already kept box is above ``iou_threshold``.
    """
    if len(corners) == 0:
        return []
    corners = np.asarray(corners, dtype=np.float64)
    x1, y1, x2, y2 = corners[:, 0], corners[:, 1], corners[:, 2], corners[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    kept: list[int] = []
    while order.size:
        best = int(order[0])
        kept.append(best)
        rest = order[1:]
        inter_w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        inter_h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = inter_w * inter_h
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou_threshold]
    return kept


def classwise_nms(corners: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> list[int]:
    """NMS within each class (boxes of different classes never suppress each other); highest score first."""
    kept: list[int] = []
    for class_id in np.unique(class_ids):
        members = np.flatnonzero(class_ids == class_id)
        kept.extend(int(members[i]) for i in nms(corners[members], scores[members], iou_threshold))
    return sorted(kept, key=lambda index: -float(scores[index]))


@dataclass(frozen=True)
class Letterbox:
    """How a ``source_width`` × ``source_height`` image was fitted into the model input (scale, then pad)."""

    scale: float
    pad_left: int
    pad_top: int
    resized_width: int
    resized_height: int

    @classmethod
    def fit(cls, source_width: int, source_height: int, input_width: int, input_height: int) -> Letterbox:
        scale = min(input_width / source_width, input_height / source_height)
        resized_width = max(1, round(source_width * scale))
        resized_height = max(1, round(source_height * scale))
        return cls(
            scale=scale,
            pad_left=(input_width - resized_width) // 2,
            pad_top=(input_height - resized_height) // 2,
            resized_width=resized_width,
            resized_height=resized_height,
        )

    def to_source(self, corners: np.ndarray) -> np.ndarray:
        """Map ``[x1, y1, x2, y2]`` rows from model-input pixels back to source pixels."""
        mapped = np.asarray(corners, dtype=np.float64).copy()
        mapped[:, [0, 2]] = (mapped[:, [0, 2]] - self.pad_left) / self.scale
        mapped[:, [1, 3]] = (mapped[:, [1, 3]] - self.pad_top) / self.scale
        return mapped
