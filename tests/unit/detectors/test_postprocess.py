"""Common detector post-processing (CONTRACT §4.3, §10)."""

from __future__ import annotations

from pipeline.detectors.base import RawDetection
from pipeline.detectors.postprocess import clamp_box, postprocess


def raw(label="person", confidence=0.9, x=10, y=10, width=50, height=50, **extra) -> RawDetection:
    return RawDetection(label, confidence, x, y, width, height, **extra)


def box(detection: RawDetection) -> tuple[int, int, int, int]:
    return detection.x, detection.y, detection.width, detection.height


def test_clamping_applies_to_corners_as_in_the_contract_example():
    kept, _ = postprocess([raw(x=-10, y=-20, width=50, height=60)], 640, 480)

    assert [box(d) for d in kept] == [(0, 0, 40, 40)]


def test_boxes_past_the_right_and_bottom_edges_end_at_the_edge():
    kept, _ = postprocess([raw(x=600, y=400, width=100, height=200)], 640, 480)

    assert [box(d) for d in kept] == [(600, 400, 40, 80)]


def test_boxes_left_empty_after_clamping_are_dropped_without_counting_as_filtered():
    detections = [
        raw(x=700, y=10),  # right of the frame
        raw(x=-80, y=10, width=50),  # left of the frame
        raw(width=0),
        raw(height=-5),
    ]

    kept, filtered = postprocess(detections, 640, 480)

    assert kept == []
    assert filtered == 0


def test_labels_are_lowercased_and_trimmed_and_blank_labels_dropped():
    kept, _ = postprocess([raw(label="  Person "), raw(label="CAR"), raw(label="   ")], 640, 480)

    assert [d.object_type for d in kept] == ["person", "car"]


def test_detections_below_the_configured_threshold_are_dropped_and_counted(settings):
    settings.DETECTION_CONFIDENCE_THRESHOLD = 0.6
    detections = [raw(confidence=0.59), raw(confidence=0.6), raw(confidence=0.95), raw(confidence=0.1)]

    kept, filtered = postprocess(detections, 640, 480)

    assert [d.confidence for d in kept] == [0.6, 0.95]
    assert filtered == 2


def test_the_default_threshold_is_half(settings):
    kept, filtered = postprocess([raw(confidence=0.49), raw(confidence=0.5)], 640, 480)

    assert [d.confidence for d in kept] == [0.5]
    assert filtered == 1


def test_an_explicit_threshold_overrides_the_setting(settings):
    settings.DETECTION_CONFIDENCE_THRESHOLD = 0.9

    kept, filtered = postprocess([raw(confidence=0.3), raw(confidence=0.2)], 640, 480, threshold=0.25)

    assert [d.confidence for d in kept] == [0.3]
    assert filtered == 1


def test_embedding_and_attributes_survive():
    kept, _ = postprocess([raw(label="Car", embedding=[0.1, 0.2], attributes={"color": "red"})], 640, 480)

    assert kept[0].embedding == [0.1, 0.2]
    assert kept[0].attributes == {"color": "red"}


def test_an_unknown_frame_size_only_clamps_at_the_origin():
    assert clamp_box(-5, 5, 100, 100, 0, 0) == (0, 5, 95, 100)
