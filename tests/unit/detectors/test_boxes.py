"""IoU, NMS and letterbox geometry shared by the detector backends."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detectors.boxes import Letterbox, classwise_nms, iou, nms


def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_nms_keeps_the_best_of_overlapping_boxes_and_every_separate_one():
    corners = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [300, 300, 350, 350], [2, 0, 102, 100]])
    scores = np.array([0.8, 0.9, 0.5, 0.7])

    assert nms(corners, scores, 0.45) == [1, 2]


def test_nms_suppresses_only_above_the_threshold():
    corners = np.array([[0, 0, 10, 10], [5, 0, 15, 10]])  # IoU 1/3
    scores = np.array([0.9, 0.8])

    assert nms(corners, scores, 1 / 3 + 1e-9) == [0, 1]
    assert nms(corners, scores, 0.3) == [0]


def test_nms_of_nothing_is_nothing():
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5) == []


def test_classwise_nms_never_suppresses_across_classes():
    corners = np.array([[0, 0, 100, 100], [1, 1, 101, 101], [2, 2, 102, 102]])
    scores = np.array([0.6, 0.9, 0.7])
    class_ids = np.array([0, 1, 0])

    assert classwise_nms(corners, scores, class_ids, 0.45) == [1, 2]


def test_letterbox_of_a_wide_image_pads_top_and_bottom_and_maps_back():
    box = Letterbox.fit(1280, 720, 640, 640)

    assert (box.scale, box.resized_width, box.resized_height, box.pad_left, box.pad_top) == (0.5, 640, 360, 0, 140)
    assert box.to_source(np.array([[270.0, 220.0, 370.0, 420.0]])).tolist() == [[540.0, 160.0, 740.0, 560.0]]


def test_letterbox_of_a_tall_image_pads_left_and_right():
    box = Letterbox.fit(480, 960, 640, 640)

    assert (box.scale, box.resized_width, box.resized_height, box.pad_left, box.pad_top) == (
        2 / 3,
        320,
        640,
        160,
        0,
    )
    assert box.to_source(np.array([[160.0, 0.0, 480.0, 640.0]])).tolist() == [[0.0, 0.0, 480.0, 960.0]]
