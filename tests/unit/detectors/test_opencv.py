"""The embedded OpenCV detector: HOG confidence mapping, motion rules and gating, on synthetic frames."""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np
import pytest

from pipeline.detectors.base import Frame, RawDetection
from pipeline.detectors.opencv import (
    OpenCVDetector,
    drop_motion_on_persons,
    hog_confidence,
    motion_boxes,
    motion_confidence,
    motion_mask_input,
    persons_from_hog,
)


def background(width: int = 640, height: int = 480) -> np.ndarray:
    """A smooth horizontal gradient: nothing for HOG to find, nothing for motion to see."""
    row = np.linspace(40, 200, width).astype(np.uint8)
    return np.repeat(np.repeat(row[None, :, None], height, axis=0), 3, axis=2)


def with_person(pixels: np.ndarray, *, centre_x: int, top: int, height: int) -> np.ndarray:
    """Draw a dark standing stick figure (head, torso, arms, legs) that OpenCV's HOG people detector finds."""
    image = pixels.copy()
    s = height / 260
    dark = (30, 30, 30)

    def p(dx: float, dy: float) -> tuple[int, int]:
        return int(centre_x + dx * s), int(top + dy * s)

    cv2.circle(image, p(0, 20), int(18 * s), dark, -1)
    cv2.line(image, p(0, 38), p(0, 45), dark, max(1, int(10 * s)))
    torso = np.array([p(-30, 45), p(30, 45), p(24, 140), p(-24, 140)], np.int32)
    cv2.fillPoly(image, [torso], dark)
    cv2.line(image, p(-30, 50), p(-40, 135), dark, max(1, int(12 * s)))
    cv2.line(image, p(30, 50), p(40, 135), dark, max(1, int(12 * s)))
    cv2.line(image, p(-12, 140), p(-22, 255), dark, max(1, int(16 * s)))
    cv2.line(image, p(12, 140), p(22, 255), dark, max(1, int(16 * s)))
    return cv2.GaussianBlur(image, (5, 5), 0)


def with_block(pixels: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    image = pixels.copy()
    cv2.rectangle(image, (x, y), (x + width - 1, y + height - 1), (255, 255, 255), -1)
    return image


def frame(pixels: np.ndarray, camera_id: str = "front") -> Frame:
    return Frame(data=b"", filename="f.jpg", mime_type="image/jpeg", camera_id=camera_id, _pixels=pixels)


def classes(result) -> list[str]:
    return [d.object_type for d in result.detections]


# --- pure rules -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "expected"),
    [(0.0, 0.0), (0.5, 1 - math.exp(-0.5)), (1.0, 1 - math.exp(-1)), (2.0, 1 - math.exp(-2)), (10.0, 0.99)],
)
def test_hog_confidence_is_one_minus_e_to_the_minus_weight_capped_at_099(weight, expected):
    assert hog_confidence(weight) == pytest.approx(expected)


def test_a_negative_hog_weight_is_zero_confidence():
    assert hog_confidence(-1.0) == 0.0


def test_motion_confidence_grows_with_area_up_to_095():
    assert motion_confidence(0.005) == pytest.approx(0.55)
    assert motion_confidence(0.02) == pytest.approx(0.7)
    assert motion_confidence(0.5) == 0.95


def test_hog_rects_are_suppressed_and_mapped_back_to_source_pixels():
    rects = [(100, 50, 64, 128), (104, 52, 64, 128), (400, 50, 64, 128)]
    weights = [0.5, 1.5, 0.2]

    persons = persons_from_hog(rects, weights, scale=0.5)

    assert [(p.x, p.y, p.width, p.height) for p in persons] == [(208, 104, 128, 256), (800, 100, 128, 256)]
    assert [p.confidence for p in persons] == pytest.approx([1 - math.exp(-1.5), 1 - math.exp(-0.2)])
    assert persons_from_hog((), (), scale=1.0) == []


def test_motion_boxes_overlapping_a_person_above_iou_03_are_dropped():
    person = RawDetection("person", 0.9, 100, 100, 100, 200)
    motion = [
        RawDetection("motion", 0.7, 110, 110, 100, 200),  # IoU ≈ 0.75
        RawDetection("motion", 0.7, 150, 100, 100, 200),  # IoU 1/3 > 0.3
        RawDetection("motion", 0.6, 170, 100, 100, 200),  # IoU ≈ 0.18
        RawDetection("motion", 0.6, 400, 100, 50, 50),  # elsewhere
    ]

    kept = drop_motion_on_persons(motion, [person])

    assert [(m.x, m.y) for m in kept] == [(170, 100), (400, 100)]


def test_motion_keeps_the_five_largest_regions_of_at_least_half_a_percent():
    before = background()
    after = before.copy()
    sizes = [120, 100, 90, 80, 70, 60, 20]  # 20×20 px is 0.13 % of the frame: ignored
    for index, size in enumerate(sizes):
        x = 10 + (index % 4) * 155
        y = 10 + (index // 4) * 240
        after = with_block(after, x, y, size, size)

    boxes = motion_boxes(motion_mask_input(before), motion_mask_input(after), 640, 480)

    assert len(boxes) == 5
    widths = [b.width for b in boxes]
    assert widths == sorted(widths, reverse=True)
    assert all(b.object_type == "motion" for b in boxes)
    assert boxes[-1].width < 110  # the 60 px block (grown by blur and dilation) is the sixth: gone
    assert all(0.5 <= b.confidence <= 0.95 for b in boxes)
    assert boxes[0].confidence > boxes[-1].confidence


# --- the backend ----------------------------------------------------------------------------------------------


def test_the_first_frame_of_a_camera_yields_no_motion_and_a_static_scene_nothing():
    detector = OpenCVDetector()
    scene = with_block(background(), 300, 200, 80, 80)

    first = detector.detect(frame(scene))
    second = detector.detect(frame(scene.copy()))

    assert classes(first) == []
    assert classes(second) == []
    assert first.model == "opencv-hog"


def test_motion_appears_where_two_frames_differ():
    detector = OpenCVDetector()
    detector.detect(frame(background()))

    result = detector.detect(frame(with_block(background(), 400, 100, 120, 150)))

    assert classes(result) == ["motion"]
    motion = result.detections[0]
    assert 370 <= motion.x <= 400 and 70 <= motion.y <= 100
    assert 520 <= motion.x + motion.width <= 550 and 250 <= motion.y + motion.height <= 280
    assert motion.confidence == pytest.approx(motion_confidence(0.08), abs=0.15)


def test_previous_frames_are_kept_per_camera():
    detector = OpenCVDetector()
    detector.detect(frame(background(), camera_id="front"))

    other_camera_first = detector.detect(frame(with_block(background(), 400, 100, 120, 150), camera_id="back"))
    same_camera = detector.detect(frame(with_block(background(), 400, 100, 120, 150), camera_id="front"))

    assert classes(other_camera_first) == []
    assert classes(same_camera) == ["motion"]


def test_a_change_of_aspect_ratio_starts_over_and_forget_drops_the_previous_frame():
    detector = OpenCVDetector()
    detector.detect(frame(background(640, 480)))

    other_shape = detector.detect(frame(with_block(background(640, 360), 400, 100, 120, 150)))
    detector.forget("front")
    after_forget = detector.detect(frame(with_block(background(640, 360), 100, 100, 120, 150)))
    next_one = detector.detect(frame(background(640, 360)))

    assert classes(other_shape) == []
    assert classes(after_forget) == []
    assert classes(next_one) == ["motion"]


def test_the_same_scene_at_another_resolution_is_compared_at_width_320():
    detector = OpenCVDetector()
    detector.detect(frame(background(640, 480)))

    assert classes(detector.detect(frame(background(1280, 960)))) == []


def test_the_least_recently_seen_cameras_are_forgotten_past_1024():
    detector = OpenCVDetector()
    tiny = background(40, 30)
    detector.detect(frame(tiny, camera_id="oldest"))
    for index in range(1024):
        detector.detect(frame(tiny, camera_id=f"cam{index}"))

    oldest = detector.detect(frame(with_block(tiny, 5, 5, 20, 20), camera_id="oldest"))
    recent = detector.detect(frame(with_block(tiny, 5, 5, 20, 20), camera_id="cam1023"))

    assert classes(oldest) == []
    assert classes(recent) == ["motion"]


def test_motion_can_be_disabled():
    detector = OpenCVDetector(motion_enabled=False)
    detector.detect(frame(background()))

    result = detector.detect(frame(with_block(background(), 400, 100, 120, 150)))

    assert result.detections == []


def test_a_standing_person_is_found_on_the_first_frame():
    detector = OpenCVDetector()

    result = detector.detect(frame(with_person(background(), centre_x=320, top=40, height=200)))

    assert classes(result) == ["person"]
    person = result.detections[0]
    assert 0.5 < person.confidence <= 0.99
    assert person.x < 320 - 30 < 320 + 30 < person.x + person.width
    assert person.y < 60 and person.y + person.height > 200


def test_a_person_walking_in_is_a_person_and_the_motion_on_it_is_dropped():
    detector = OpenCVDetector()
    detector.detect(frame(background()))

    result = detector.detect(frame(with_person(background(), centre_x=320, top=40, height=200)))

    assert classes(result) == ["person"]


def test_a_person_who_stands_still_is_not_reported_again_hog_is_gated_by_motion():
    detector = OpenCVDetector()
    scene = with_person(background(), centre_x=320, top=40, height=200)
    detector.detect(frame(scene))

    still = detector.detect(frame(scene.copy()))
    ungated = OpenCVDetector(motion_enabled=False)
    ungated.detect(frame(scene))

    assert classes(still) == []
    assert classes(ungated.detect(frame(scene.copy()))) == ["person"]


def test_person_boxes_of_a_wide_frame_come_back_in_source_pixels():
    detector = OpenCVDetector(motion_enabled=False)
    small = with_person(background(), centre_x=320, top=40, height=200)
    wide = cv2.resize(small, (1280, 960), interpolation=cv2.INTER_LINEAR)

    on_small = detector.detect(frame(small)).detections[0]
    on_wide = detector.detect(frame(wide)).detections[0]

    assert (on_wide.x, on_wide.y, on_wide.width, on_wide.height) == pytest.approx(
        (on_small.x * 2, on_small.y * 2, on_small.width * 2, on_small.height * 2), abs=4
    )


def test_concurrent_cameras_do_not_share_previous_frames():
    detector = OpenCVDetector(motion_enabled=True)
    results: dict[str, list] = {}

    def run(camera_id: str) -> None:
        detector.detect(frame(background(), camera_id))
        results[camera_id] = classes(detector.detect(frame(with_block(background(), 50, 50, 150, 150), camera_id)))

    threads = [threading.Thread(target=run, args=(f"cam{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {f"cam{i}": ["motion"] for i in range(4)}
