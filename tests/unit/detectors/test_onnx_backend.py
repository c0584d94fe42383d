"""The ONNX backend running real onnxruntime sessions on tiny models built by ``tests.onnx_models``."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detectors import get_detector, reset_detector, resolve_backend_name
from pipeline.detectors.base import DetectorError, Frame
from pipeline.detectors.onnx import OnnxDetector
from tests.onnx_models import brightness_model, constant_model, e2e_output, yolov5_output, yolov8_output


@pytest.fixture(autouse=True)
def _fresh_detector():
    reset_detector()
    yield
    reset_detector()


def frame_of(width: int, height: int, value: int = 0) -> Frame:
    pixels = np.full((height, width, 3), value, dtype=np.uint8)
    return Frame(data=b"", filename="a.jpg", mime_type="image/jpeg", _pixels=pixels)


def found(result) -> list[tuple]:
    return [(d.object_type, round(d.confidence, 3), d.x, d.y, d.width, d.height) for d in result.detections]


def test_yolov8_model_boxes_come_back_in_source_pixels_with_coco_labels(tmp_path):
    boxes = [(320, 320, 100, 200, [0.9, 0, 0]), (325, 320, 100, 200, [0.85, 0, 0]), (50, 200, 20, 20, [0, 0, 0.7])]
    output = yolov8_output(boxes + [(0, 0, 0, 0, [0, 0, 0])] * 13, classes=3)  # [1, 7, 16]
    detector = OnnxDetector(str(constant_model(tmp_path / "yolov8n.onnx", output)))

    result = detector.detect(frame_of(1280, 720))

    assert found(result) == [("person", 0.9, 540, 160, 200, 400), ("car", 0.7, 80, 100, 40, 40)]
    assert result.model == "yolov8n"
    assert result.inference_ms > 0


def test_yolov5_model_is_decoded_with_objectness(tmp_path):
    dog_scores = [0.0] * 16 + [0.9]
    output = yolov5_output([(320, 320, 64, 64, 0.8, dog_scores)] * 30, classes=17)  # [1, 30, 22]
    detector = OnnxDetector(str(constant_model(tmp_path / "v5.onnx", output, input_size=640)))

    result = detector.detect(frame_of(640, 640))

    assert found(result) == [("dog", 0.72, 288, 288, 64, 64)]


def test_e2e_model_keeps_overlapping_boxes(tmp_path):
    output = e2e_output([(100, 100, 200, 200, 0.9, 0), (105, 105, 205, 205, 0.8, 0), (0, 0, 1, 1, 0.0, 0)] * 3)
    detector = OnnxDetector(str(constant_model(tmp_path / "e2e.onnx", output, input_size=(320, 640))))

    result = detector.detect(frame_of(1280, 640))

    assert [d[:2] for d in found(result)] == [("person", 0.9)] * 3 + [("person", 0.8)] * 3
    assert found(result)[0][2:] == (200, 200, 200, 200)


def test_dynamic_input_uses_the_configured_input_size(tmp_path, settings):
    path = constant_model(tmp_path / "dyn.onnx", e2e_output([(0, 0, 160, 160, 0.9, 0)] * 8), input_size=None)

    settings.DETECTOR_ONNX_PATH = str(path)
    settings.DETECTOR_ONNX_INPUT_SIZE = 320
    at_320 = OnnxDetector.from_settings().detect(frame_of(640, 640))
    settings.DETECTOR_ONNX_INPUT_SIZE = 640
    at_640 = OnnxDetector.from_settings().detect(frame_of(640, 640))

    assert found(at_320)[0][2:] == (0, 0, 320, 320)
    assert found(at_640)[0][2:] == (0, 0, 160, 160)


def test_labels_come_from_the_model_metadata(tmp_path):
    path = constant_model(
        tmp_path / "names.onnx", e2e_output([(0, 0, 50, 50, 0.9, 1)] * 8), names="{0: 'parcel', 1: 'Forklift'}"
    )

    result = OnnxDetector(str(path)).detect(frame_of(640, 640))

    assert found(result)[0][0] == "Forklift"  # lowercasing is the common post-processing's job


def test_a_labels_file_wins_over_metadata_and_a_missing_one_falls_back(tmp_path, caplog):
    path = constant_model(tmp_path / "m.onnx", e2e_output([(0, 0, 50, 50, 0.9, 1)] * 8), names="{0: 'a', 1: 'b'}")
    labels = tmp_path / "labels.txt"
    labels.write_text("zero\none\n", encoding="utf-8")

    from_file = OnnxDetector(str(path), labels_path=str(labels)).detect(frame_of(640, 640))
    fallback = OnnxDetector(str(path), labels_path=str(tmp_path / "missing.txt")).detect(frame_of(640, 640))

    assert found(from_file)[0][0] == "one"
    assert found(fallback)[0][0] == "b"
    assert "DETECTOR_ONNX_LABELS" in caplog.text


def test_the_format_setting_overrides_shape_detection(tmp_path):
    # A one-class yolov5 output is [1, N, 6]: ambiguous; with whole-number scores auto would read it as e2e.
    output = yolov5_output([(320, 320, 100, 100, 1.0, [1.0])] * 10, classes=1)
    path = constant_model(tmp_path / "v5one.onnx", output)

    forced = OnnxDetector(str(path), fmt="yolov5").detect(frame_of(640, 640))

    assert found(forced) == [("person", 1.0, 270, 270, 100, 100)]


def test_what_the_model_sees_is_the_letterboxed_frame_scaled_to_unit_range(tmp_path):
    detector = OnnxDetector(str(brightness_model(tmp_path / "bright.onnx", (0, 0, 64, 64))))

    white_square = detector.detect(frame_of(640, 640, value=255))
    black_square = detector.detect(frame_of(640, 640, value=0))
    white_wide = detector.detect(frame_of(1280, 720, value=255))

    assert found(white_square) == [("person", 1.0, 0, 0, 64, 64)]
    assert found(black_square) == []
    # 360 rows of white and 280 rows of padding 114 out of 640 (float32 sums in the model: 1e-3 tolerance).
    assert white_wide.detections[0].confidence == pytest.approx((360 + 280 * 114 / 255) / 640, abs=1e-3)


def test_the_padding_band_is_114_and_the_red_channel_comes_first(tmp_path):
    padding_probe = OnnxDetector(str(brightness_model(tmp_path / "pad.onnx", (0, 0, 64, 64), pixel=(10, 320))))
    content_probe = OnnxDetector(str(brightness_model(tmp_path / "red.onnx", (0, 0, 64, 64), pixel=(320, 320))))
    red_bgr = np.zeros((720, 1280, 3), dtype=np.uint8)
    red_bgr[:, :, 2] = 204
    red = Frame(data=b"", filename="red.jpg", mime_type="image/jpeg", _pixels=red_bgr)

    assert padding_probe.detect(red).detections[0].confidence == pytest.approx(114 / 255)
    assert content_probe.detect(red).detections[0].confidence == pytest.approx(0.8)


def test_a_file_that_is_not_a_model_fails_permanently(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not an onnx model")

    with pytest.raises(DetectorError) as raised:
        OnnxDetector(str(path))

    assert raised.value.error_type == "model_load_error"
    assert raised.value.retryable is False


def test_an_inference_failure_is_a_detector_error(tmp_path):
    # The model wants a rank-5 input; the detector feeds [1, 3, H, W].
    path = constant_model(tmp_path / "rank5.onnx", e2e_output([(0, 0, 5, 5, 0.9, 0)] * 8), input_size=640)
    import onnx

    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim.add().dim_value = 1
    onnx.save(model, str(path))
    detector = OnnxDetector(str(path))

    with pytest.raises(DetectorError) as raised:
        detector.detect(frame_of(640, 640))

    assert raised.value.error_type == "inference_error"


def test_auto_picks_onnx_for_an_existing_model_file(tmp_path, settings):
    path = constant_model(tmp_path / "auto.onnx", e2e_output([(0, 0, 5, 5, 0.9, 0)] * 8))
    settings.DETECTOR_URL = None
    settings.DETECTOR_BACKEND = "auto"
    settings.DETECTOR_ONNX_PATH = str(path)

    detector = get_detector()

    assert resolve_backend_name() == "onnx"
    assert isinstance(detector, OnnxDetector)
    assert get_detector() is detector


def test_replacing_the_model_file_or_its_settings_rebuilds_the_detector(tmp_path, settings):
    import os

    path = constant_model(tmp_path / "swap.onnx", e2e_output([(0, 0, 5, 5, 0.9, 0)] * 8))
    settings.DETECTOR_BACKEND = "onnx"
    settings.DETECTOR_ONNX_PATH = str(path)
    first = get_detector()

    constant_model(path, e2e_output([(0, 0, 5, 5, 0.9, 7)] * 8))
    os.utime(path, ns=(1, 1))
    second = get_detector()
    settings.DETECTOR_NMS_IOU = 0.3
    third = get_detector()

    assert second is not first
    assert found(second.detect(frame_of(640, 640)))[0][0] == "truck"
    assert third is not second
    assert third.nms_iou == 0.3


def test_onnx_backend_without_a_path_is_a_configuration_error(settings):
    settings.DETECTOR_BACKEND = "onnx"
    settings.DETECTOR_ONNX_PATH = None

    with pytest.raises(DetectorError) as raised:
        get_detector()

    assert (raised.value.error_type, raised.value.retryable) == ("config_error", False)
