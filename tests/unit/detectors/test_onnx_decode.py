"""ONNX output decoding, pre-processing and label sources, on plain arrays (CONTRACT §4.3)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detectors.base import DetectorError
from pipeline.detectors.boxes import Letterbox
from pipeline.detectors.onnx import (
    COCO_LABELS,
    decode,
    detect_format,
    label_for,
    labels_from_file,
    labels_from_metadata,
    letterbox_image,
    to_raw_detections,
)
from tests.onnx_models import e2e_output, yolov5_output, yolov8_output

INPUT = (640, 640)


def run_decode(output, fmt, *, min_score=0.25, iou=0.45):
    corners, scores, class_ids = decode(output, fmt, min_score=min_score, iou_threshold=iou, input_size=INPUT)
    return corners.round(3).tolist(), scores.round(3).tolist(), class_ids.tolist()


# --- format detection -----------------------------------------------------------------------------------------


def test_formats_are_recognised_by_shape():
    assert detect_format(np.zeros((1, 84, 8400), dtype=np.float32)) == "yolov8"
    assert detect_format(np.zeros((1, 25200, 85), dtype=np.float32)) == "yolov5"
    assert detect_format(e2e_output([(0, 0, 10, 10, 0.9, 3)] * 300)) == "e2e"


def test_six_columns_with_fractional_class_column_is_yolov5():
    single_class_v5 = yolov5_output([(100, 100, 20, 20, 0.9, [0.8])] * 50, classes=1)

    assert detect_format(single_class_v5) == "yolov5"


def test_an_output_that_is_not_three_dimensional_is_rejected():
    with pytest.raises(DetectorError) as raised:
        detect_format(np.zeros((84, 8400), dtype=np.float32))

    assert raised.value.error_type == "malformed_response"


@pytest.mark.parametrize(
    ("output", "fmt"),
    [
        (np.zeros((1, 4, 10)), "yolov8"),
        (np.zeros((1, 10, 5)), "yolov5"),
        (np.zeros((1, 10, 7)), "e2e"),
        (np.zeros((10, 6)), "e2e"),
    ],
)
def test_a_forced_format_that_does_not_fit_the_shape_is_rejected(output, fmt):
    with pytest.raises(DetectorError) as raised:
        decode(output, fmt, min_score=0.25, iou_threshold=0.45, input_size=INPUT)

    assert raised.value.error_type == "malformed_response"


# --- decoding -------------------------------------------------------------------------------------------------


def test_yolov8_boxes_are_converted_from_centres_and_suppressed_per_class():
    output = yolov8_output(
        [
            (320, 320, 100, 200, [0.9, 0.0]),
            (322, 322, 100, 200, [0.8, 0.0]),  # same class, overlapping: suppressed
            (321, 321, 100, 200, [0.0, 0.7]),  # other class, same place: kept
            (100, 100, 20, 20, [0.1, 0.2]),  # below the floor
        ],
        classes=2,
    )

    corners, scores, class_ids = run_decode(output, "yolov8")

    assert corners == [[270, 220, 370, 420], [271, 221, 371, 421]]
    assert scores == [0.9, 0.7]
    assert class_ids == [0, 1]


def test_yolov5_confidence_is_objectness_times_best_class_score():
    output = yolov5_output(
        [(100, 100, 40, 40, 0.5, [0.2, 0.9]), (400, 400, 40, 40, 0.2, [0.9, 0.0]), (200, 200, 10, 10, 1.0, [0.6, 0.0])],
        classes=2,
    )

    corners, scores, class_ids = run_decode(output, "yolov5", min_score=0.25)

    assert scores == [0.6, 0.45]  # 1.0 × 0.6, then 0.5 × 0.9; 0.2 × 0.9 is under the floor
    assert class_ids == [0, 1]
    assert corners == [[195, 195, 205, 205], [80, 80, 120, 120]]


def test_e2e_rows_are_used_as_they_are_without_nms():
    output = e2e_output([(10, 10, 110, 110, 0.6, 2), (12, 12, 112, 112, 0.95, 2), (0, 0, 5, 5, 0.1, 0)])

    corners, scores, class_ids = run_decode(output, "e2e")

    assert corners == [[12, 12, 112, 112], [10, 10, 110, 110]]
    assert scores == [0.95, 0.6]
    assert class_ids == [2, 2]


def test_normalised_coordinates_are_scaled_to_the_input():
    output = e2e_output([(0.25, 0.5, 0.75, 1.0, 0.9, 0)])

    corners, _, _ = run_decode(output, "e2e")

    assert corners == [[160, 320, 480, 640]]


@pytest.mark.parametrize("fmt", ["yolov8", "e2e"])
def test_at_most_100_boxes_are_returned(fmt):
    rows = [(10 + 6 * (i % 100), 10 + 6 * (i // 100), 4, 4) for i in range(150)]
    if fmt == "yolov8":
        output = yolov8_output([(cx, cy, w, h, [0.3 + i / 1000]) for i, (cx, cy, w, h) in enumerate(rows)], 1)
    else:
        output = e2e_output([(cx, cy, cx + w, cy + h, 0.3 + i / 1000, 0) for i, (cx, cy, w, h) in enumerate(rows)])

    _, scores, _ = run_decode(output, fmt, iou=0.45)

    assert len(scores) == 100
    assert scores[0] == pytest.approx(0.449)  # the best ones survive


def test_nms_iou_setting_decides_what_overlaps_suppress():
    output = yolov8_output([(100, 100, 100, 100, [0.9]), (150, 100, 100, 100, [0.8])], classes=1)  # IoU 1/3

    assert len(run_decode(output, "yolov8", iou=0.45)[1]) == 2
    assert len(run_decode(output, "yolov8", iou=0.3)[1]) == 1


def test_raw_detections_are_mapped_to_source_pixels_with_labels():
    box = Letterbox.fit(1280, 720, 640, 640)
    corners = np.array([[270.0, 220.0, 370.0, 420.0], [0.0, 140.0, 10.0, 150.0]])

    detections = to_raw_detections(corners, np.array([0.9, 0.6]), np.array([0, 99]), box, COCO_LABELS)

    assert [(d.object_type, d.x, d.y, d.width, d.height) for d in detections] == [
        ("person", 540, 160, 200, 400),
        ("class_99", 0, 0, 20, 20),
    ]
    assert detections[0].confidence == pytest.approx(0.9)
    assert to_raw_detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0), box, COCO_LABELS) == []


# --- pre-processing -------------------------------------------------------------------------------------------


def test_letterbox_image_pads_with_114_converts_to_rgb_and_scales_to_unit_range():
    blue_bgr = np.zeros((720, 1280, 3), dtype=np.uint8)
    blue_bgr[:, :, 0] = 255

    tensor, box = letterbox_image(blue_bgr, 640, 640)

    assert tensor.shape == (1, 3, 640, 640)
    assert tensor.dtype == np.float32
    assert box.pad_top == 140
    assert np.allclose(tensor[0, :, :140, :], 114 / 255)  # padding band
    assert np.allclose(tensor[0, :, 500:, :], 114 / 255)
    content = tensor[0, :, 140:500, :]
    assert np.allclose(content[2], 1.0)  # blue is the third channel in RGB
    assert np.allclose(content[:2], 0.0)


# --- labels ---------------------------------------------------------------------------------------------------


def test_coco_labels_are_the_80_classes():
    assert len(COCO_LABELS) == 80
    assert (COCO_LABELS[0], COCO_LABELS[2], COCO_LABELS[79]) == ("person", "car", "toothbrush")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ("{0: 'person', 1: 'forklift'}", ["person", "forklift"]),
        ('{"0": "person", "2": "box"}', ["person", "class_1", "box"]),
        ('["a", "b"]', ["a", "b"]),
        ("['x']", ["x"]),
        ("", None),
        (None, None),
        ("not a literal {", None),
        ("{'a': 'b'}", None),
        ("42", None),
        ("{}", None),
    ],
)
def test_labels_from_model_metadata(names, expected):
    assert labels_from_metadata(names) == expected


def test_labels_file_has_one_label_per_line_and_ignores_blank_lines(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("person\n  bicycle \n\ncar\n\n", encoding="utf-8")

    assert labels_from_file(str(path)) == ["person", "bicycle", "car"]


def test_an_unknown_class_id_gets_a_placeholder_label():
    assert label_for(["a"], 0) == "a"
    assert label_for(["a"], 3) == "class_3"
    assert label_for(["a"], -1) == "class_-1"
