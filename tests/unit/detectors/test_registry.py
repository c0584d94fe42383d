"""Choosing the detector backend from the settings and keeping one per process (CONTRACT §4.3)."""

from __future__ import annotations

import threading

import pytest

from pipeline.detectors import get_detector, reset_detector, resolve_backend_name
from pipeline.detectors.base import DetectorError
from pipeline.detectors.http import HttpDetector
from pipeline.detectors.opencv import OpenCVDetector


@pytest.fixture(autouse=True)
def _fresh_detector(settings):
    settings.DETECTOR_BACKEND = "auto"
    settings.DETECTOR_URL = None
    settings.DETECTOR_ONNX_PATH = None
    reset_detector()
    yield
    reset_detector()


def test_auto_is_opencv_when_nothing_is_configured():
    assert resolve_backend_name() == "opencv"
    assert isinstance(get_detector(), OpenCVDetector)


def test_auto_is_http_when_a_detector_url_is_set_even_with_a_model(settings, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    settings.DETECTOR_URL = "http://127.0.0.1:9/"
    settings.DETECTOR_ONNX_PATH = str(model)

    assert resolve_backend_name() == "http"


def test_auto_ignores_an_onnx_path_that_is_not_a_file(settings, tmp_path):
    settings.DETECTOR_ONNX_PATH = str(tmp_path / "missing.onnx")
    assert resolve_backend_name() == "opencv"
    settings.DETECTOR_ONNX_PATH = str(tmp_path)
    assert resolve_backend_name() == "opencv"


@pytest.mark.parametrize("backend", ["http", "onnx", "opencv"])
def test_an_explicit_backend_is_used_as_is(settings, backend):
    settings.DETECTOR_BACKEND = backend
    assert resolve_backend_name() == backend


def test_one_detector_per_process_until_its_settings_change(settings):
    settings.DETECTOR_URL = "http://127.0.0.1:9"
    first = get_detector()
    same = get_detector()
    settings.DETECTOR_TIMEOUT_SECONDS = 3
    rebuilt = get_detector()
    settings.DETECTOR_URL = None
    embedded = get_detector()

    assert isinstance(first, HttpDetector)
    assert same is first
    assert rebuilt is not first and rebuilt.timeout == 3
    assert first._client.is_closed  # the replaced detector was closed
    assert isinstance(embedded, OpenCVDetector)


def test_the_embedded_detector_follows_the_motion_setting(settings):
    with_motion = get_detector()
    settings.DETECTOR_EMBEDDED_MOTION = False
    without_motion = get_detector()

    assert with_motion.motion_enabled is True
    assert without_motion.motion_enabled is False


def test_reset_forgets_the_detector():
    first = get_detector()
    reset_detector()
    reset_detector()  # idempotent

    assert get_detector() is not first


def test_threads_share_one_detector():
    seen = []
    barrier = threading.Barrier(6)

    def grab():
        barrier.wait()
        seen.append(get_detector())

    threads = [threading.Thread(target=grab) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(seen) == 6 and len({id(detector) for detector in seen}) == 1


def test_http_backend_without_a_url_is_a_configuration_error(settings):
    settings.DETECTOR_BACKEND = "http"

    with pytest.raises(DetectorError) as raised:
        get_detector()

    assert (raised.value.error_type, raised.value.retryable) == ("config_error", False)
