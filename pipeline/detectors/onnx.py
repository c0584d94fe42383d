"""ONNX detector backend (CONTRACT §4.3): a YOLO-family model run with onnxruntime.

- Session on ``DETECTOR_ONNX_PATH`` with the CUDA provider when onnxruntime offers it, else CPU.
- Input ``[1, 3, H, W]`` float32: H, W from the model, or ``DETECTOR_ONNX_INPUT_SIZE`` (640) when dynamic. The
  BGR frame is letterboxed (aspect kept, centred, padding 114), converted to RGB and scaled to 0–1.
- The first output is decoded as ``yolov8`` ``[1, 4+C, N]`` (cx, cy, w, h, C scores), ``yolov5`` ``[1, N, 5+C]``
  (cx, cy, w, h, objectness, C scores) or ``e2e`` ``[1, N, 6]`` (x1, y1, x2, y2, score, class id).
  ``DETECTOR_ONNX_FORMAT=auto`` picks by shape: last axis 6 with whole-number class ids → e2e; else fewer rows
  than columns → yolov8; else yolov5 (set the format explicitly for ambiguous shapes, e.g. a 1-class yolov5).
  Coordinates all ≤ 1.5 are taken as normalised to the input size.
- yolov8/yolov5 get class-wise NMS (IoU ``DETECTOR_NMS_IOU``); candidates below min(0.25, the confidence
  threshold) are discarded before NMS. At most 100 boxes, mapped back to source pixels.
- Labels: ``DETECTOR_ONNX_LABELS`` (one per line, blank lines ignored), else the model's ``names`` metadata
  (Ultralytics writes a Python dict literal), else the 80 COCO names. An id without a label becomes ``class_<id>``.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import time

import cv2
import numpy as np
from django.conf import settings

from pipeline.detectors.base import Detector, DetectorError, DetectorResult, Frame, RawDetection
from pipeline.detectors.boxes import Letterbox, classwise_nms

logger = logging.getLogger("hsi.pipeline.detectors.onnx")

MAX_BOXES = 100
PAD_VALUE = 114
CANDIDATE_FLOOR = 0.25
FORMATS = ("yolov8", "yolov5", "e2e")

COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip


# --- labels --------------------------------------------------------------------------------------------------


def labels_from_file(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def labels_from_metadata(names: str | None) -> list[str] | None:
    """Labels from a ``names`` metadata value: a dict literal ``{0: 'person', ...}`` or a list, JSON or Python."""
    if not names:
        return None
    parsed = None
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(names)
            break
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    if isinstance(parsed, list | tuple) and parsed:
        return [str(name) for name in parsed]
    if isinstance(parsed, dict) and parsed:
        try:
            by_id = {int(key): str(value) for key, value in parsed.items()}
        except (TypeError, ValueError):
            return None
        return [by_id.get(index, f"class_{index}") for index in range(max(by_id) + 1)]
    return None


def label_for(labels: list[str] | tuple[str, ...], class_id: int) -> str:
    return labels[class_id] if 0 <= class_id < len(labels) else f"class_{class_id}"


# --- pre-processing ------------------------------------------------------------------------------------------


def letterbox_image(pixels: np.ndarray, input_width: int, input_height: int) -> tuple[np.ndarray, Letterbox]:
    """The model input ``[1, 3, H, W]`` float32 (RGB, 0–1) of a BGR frame, and the letterbox geometry used."""
    height, width = pixels.shape[:2]
    box = Letterbox.fit(width, height, input_width, input_height)
    resized = cv2.resize(pixels, (box.resized_width, box.resized_height), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((input_height, input_width, 3), PAD_VALUE, dtype=np.uint8)
    canvas[box.pad_top : box.pad_top + box.resized_height, box.pad_left : box.pad_left + box.resized_width] = resized
    tensor = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return np.ascontiguousarray(tensor.transpose(2, 0, 1)[np.newaxis]), box


# --- decoding ------------------------------------------------------------------------------------------------


def detect_format(output: np.ndarray) -> str:
    """``yolov8`` | ``yolov5`` | ``e2e`` for a ``[1, a, b]`` output, by shape (see the module docstring)."""
    if output.ndim != 3 or output.shape[0] != 1:
        raise DetectorError(f"Unsupported ONNX output shape {output.shape}", error_type="malformed_response")
    rows, columns = output.shape[1], output.shape[2]
    if columns == 6 and np.all(output[0, :, 5] == np.round(output[0, :, 5])):
        return "e2e"
    if rows < columns:
        return "yolov8"
    return "yolov5"


def _centres_to_corners(centres: np.ndarray) -> np.ndarray:
    cx, cy, w, h = centres[:, 0], centres[:, 1], centres[:, 2], centres[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def decode(
    output: np.ndarray, fmt: str, *, min_score: float, iou_threshold: float, input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(corners in model-input pixels, scores, class ids) of the kept boxes, best first, at most 100."""
    if fmt == "yolov8":
        if output.ndim != 3 or output.shape[1] < 5:
            raise DetectorError(f"ONNX output {output.shape} is not [1, 4+C, N]", error_type="malformed_response")
        rows = output[0].T
        class_scores = rows[:, 4:]
    elif fmt == "yolov5":
        if output.ndim != 3 or output.shape[2] < 6:
            raise DetectorError(f"ONNX output {output.shape} is not [1, N, 5+C]", error_type="malformed_response")
        rows = output[0]
        class_scores = rows[:, 5:] * rows[:, 4:5]
    else:
        if output.ndim != 3 or output.shape[2] != 6:
            raise DetectorError(f"ONNX output {output.shape} is not [1, N, 6]", error_type="malformed_response")
        rows = output[0]
        return _decode_e2e(rows, min_score=min_score, input_size=input_size)
    class_ids = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(len(rows)), class_ids]
    keep = scores >= min_score
    corners = _normalised_to_pixels(_centres_to_corners(rows[keep, :4].astype(np.float64)), input_size)
    scores, class_ids = scores[keep].astype(np.float64), class_ids[keep]
    order = classwise_nms(corners, scores, class_ids, iou_threshold)[:MAX_BOXES]
    return corners[order], scores[order], class_ids[order]


def _decode_e2e(rows: np.ndarray, *, min_score: float, input_size: tuple[int, int]):
    scores = rows[:, 4].astype(np.float64)
    keep = np.flatnonzero(scores >= min_score)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:MAX_BOXES]
    corners = _normalised_to_pixels(rows[keep, :4].astype(np.float64), input_size)
    return corners, scores[keep], rows[keep, 5].astype(np.int64)


def _normalised_to_pixels(corners: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    if corners.size and np.abs(corners).max() <= 1.5:
        width, height = input_size
        corners = corners * np.array([width, height, width, height], dtype=np.float64)
    return corners


def to_raw_detections(
    corners: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, box: Letterbox, labels
) -> list[RawDetection]:
    """Detections in source pixels (corners rounded, then width/height from the rounded corners)."""
    if len(corners) == 0:
        return []
    source = np.round(box.to_source(corners)).astype(np.int64)
    return [
        RawDetection(
            object_type=label_for(labels, int(class_id)),
            confidence=float(score),
            x=int(x1),
            y=int(y1),
            width=int(x2 - x1),
            height=int(y2 - y1),
        )
        for (x1, y1, x2, y2), score, class_id in zip(source, scores, class_ids, strict=True)
    ]


# --- backend -------------------------------------------------------------------------------------------------


def _providers() -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _static_dimension(value) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxDetector(Detector):
    name = "onnx"

    def __init__(
        self,
        path: str,
        *,
        labels_path: str = "",
        fmt: str = "auto",
        input_size: int = 640,
        nms_iou: float = 0.45,
    ):
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(path, providers=_providers())
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise DetectorError(
                f"Cannot load ONNX model {path}: {error}", error_type="model_load_error", retryable=False
            ) from error
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        shape = list(model_input.shape) + [None] * 4
        self.input_height = _static_dimension(shape[2]) or input_size
        self.input_width = _static_dimension(shape[3]) or input_size
        self.format = fmt
        self.nms_iou = nms_iou
        metadata = self.session.get_modelmeta()
        self.labels = self._load_labels(labels_path, metadata.custom_metadata_map.get("names"))
        self.model = os.path.splitext(os.path.basename(path))[0] or "onnx"

    @classmethod
    def from_settings(cls) -> OnnxDetector:
        return cls(
            settings.DETECTOR_ONNX_PATH,
            labels_path=settings.DETECTOR_ONNX_LABELS or "",
            fmt=settings.DETECTOR_ONNX_FORMAT,
            input_size=settings.DETECTOR_ONNX_INPUT_SIZE,
            nms_iou=settings.DETECTOR_NMS_IOU,
        )

    @staticmethod
    def _load_labels(labels_path: str, metadata_names: str | None) -> list[str] | tuple[str, ...]:
        if labels_path:
            try:
                labels = labels_from_file(labels_path)
            except OSError as error:
                logger.warning("Cannot read DETECTOR_ONNX_LABELS %s (%s); using model labels", labels_path, error)
            else:
                if labels:
                    return labels
        return labels_from_metadata(metadata_names) or COCO_LABELS

    def detect(self, frame: Frame) -> DetectorResult:
        started = time.monotonic()
        tensor, box = letterbox_image(frame.pixels, self.input_width, self.input_height)
        try:
            output = np.asarray(self.session.run(None, {self.input_name: tensor})[0])
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise DetectorError(f"ONNX inference failed: {error}", error_type="inference_error") from error
        fmt = detect_format(output) if self.format == "auto" else self.format
        corners, scores, class_ids = decode(
            output,
            fmt,
            min_score=min(CANDIDATE_FLOOR, settings.DETECTION_CONFIDENCE_THRESHOLD),
            iou_threshold=self.nms_iou,
            input_size=(self.input_width, self.input_height),
        )
        return DetectorResult(
            detections=to_raw_detections(corners, scores, class_ids, box, self.labels),
            inference_ms=(time.monotonic() - started) * 1000,
            model=self.model,
        )
