"""The HTTP detector backend against the real fake detector server on loopback (CONTRACT §4.3, §4.8)."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hsi.resilience import CircuitOpenError, breaker
from pipeline.detectors import detect, get_detector, reset_detector
from pipeline.detectors.base import DetectorError, Frame
from pipeline.detectors.http import HttpDetector, sniff_image_mime
from pipeline.video import sample_video
from tests.fakes.detector_server import detection, person
from tests.fakes.http_fake import Reply
from tests.images import jpeg_bytes, png_bytes, write_video


@pytest.fixture(autouse=True)
def _fresh_detector():
    reset_detector()
    yield
    reset_detector()


@pytest.fixture
def http_detector(fake_detector, settings):
    settings.DETECTOR_BACKEND = "auto"
    settings.DETECTOR_URL = fake_detector.url + "/"
    settings.DETECTOR_API_KEY = None
    detector = HttpDetector.from_settings()
    yield detector
    detector.close()


def jpeg_frame(name: str = "/export/foscam/front/2024/a.jpg", width: int = 640, height: int = 480) -> Frame:
    return Frame(data=jpeg_bytes(width, height), filename=name, mime_type="image/jpeg", camera_id="front")


def failure(detector: HttpDetector, frame: Frame | None = None) -> DetectorError:
    with pytest.raises(DetectorError) as raised:
        detector.detect(frame or jpeg_frame())
    return raised.value


def summary(result) -> list[tuple]:
    return [(d.object_type, d.confidence, d.x, d.y, d.width, d.height) for d in result.detections]


# --- responses ------------------------------------------------------------------------------------------------


def test_both_bbox_forms_and_the_optional_fields_come_through(fake_detector, http_detector):
    fake_detector.model = "rtdetr-l"
    fake_detector.inference_time_ms = 41.5
    fake_detector.detections = [
        person(0.93, x=100, y=200, width=150, height=300),
        detection("car", 0.8, bbox=(10.4, 20.6, 30, 40)),
        {
            "class": "person",
            "confidence": 1,
            "bbox": [1, 2, 3, 4],
            "embedding": [0.5, -1, 2.25],
            "attributes": {"clothing": "red jacket"},
        },
    ]

    result = http_detector.detect(jpeg_frame())

    assert summary(result) == [
        ("person", 0.93, 100, 200, 150, 300),
        ("car", 0.8, 10, 21, 30, 40),
        ("person", 1.0, 1, 2, 3, 4),
    ]
    assert result.detections[2].embedding == [0.5, -1.0, 2.25]
    assert result.detections[2].attributes == {"clothing": "red jacket"}
    assert result.detections[0].embedding is None and result.detections[0].attributes is None
    assert (result.model, result.inference_ms) == ("rtdetr-l", 41.5)


def test_bad_entries_are_skipped_one_by_one(fake_detector, http_detector):
    good = person(0.9)
    fake_detector.detections = [
        {"confidence": 0.9, "bbox": [0, 0, 5, 5]},  # no class
        {"class": "  ", "confidence": 0.9, "bbox": [0, 0, 5, 5]},  # empty class
        {"class": 7, "confidence": 0.9, "bbox": [0, 0, 5, 5]},  # class not a string
        {"class": "car", "confidence": "0.9", "bbox": [0, 0, 5, 5]},  # confidence not numeric
        {"class": "car", "confidence": True, "bbox": [0, 0, 5, 5]},
        {"class": "car", "confidence": 1.5, "bbox": [0, 0, 5, 5]},  # out of range
        {"class": "car", "confidence": -0.1, "bbox": [0, 0, 5, 5]},
        {"class": "car", "confidence": 0.9},  # no bbox
        {"class": "car", "confidence": 0.9, "bbox": [0, 0, 5]},  # three numbers
        {"class": "car", "confidence": 0.9, "bbox": {"x": 0, "y": 0, "width": 5}},  # missing height
        {"class": "car", "confidence": 0.9, "bbox": {"x": "0", "y": 0, "width": 5, "height": 5}},
        {"class": "car", "confidence": 0.9, "bbox": "0,0,5,5"},
        "person",
        None,
        good,
        {"class": "dog", "confidence": 0.7, "bbox": [1, 1, 9, 9], "embedding": ["x"], "attributes": [1]},
    ]

    result = http_detector.detect(jpeg_frame())

    assert summary(result) == [("person", 0.9, 100, 80, 120, 260), ("dog", 0.7, 1, 1, 9, 9)]
    assert result.detections[1].embedding is None and result.detections[1].attributes is None


@pytest.mark.parametrize("body", [{"results": []}, {"detections": None}, {"detections": {"class": "person"}}, {}])
def test_an_object_without_a_detections_list_is_no_detections_with_a_warning(
    fake_detector, http_detector, caplog, body
):
    fake_detector.script("POST", "/detect", Reply(json=body))

    with caplog.at_level(logging.WARNING, logger="hsi.pipeline.detectors.http"):
        result = http_detector.detect(jpeg_frame())

    assert result.detections == []
    assert "no 'detections' list" in caplog.text
    assert result.model == "http"
    assert result.inference_ms > 0  # measured when the server reports none


# --- the request ----------------------------------------------------------------------------------------------


def test_the_image_goes_as_multipart_file_with_its_base_name_and_type(fake_detector, http_detector):
    png = png_bytes(320, 240)

    http_detector.detect(jpeg_frame("/export/foscam/front/2024/12/26/snap 01.jpg"))
    http_detector.detect(Frame(data=png, filename="/x/y/garden.png", mime_type="image/png"))
    http_detector.detect(Frame(data=png, filename="odd.bin", mime_type=""))

    uploads = fake_detector.uploads
    assert [(name, kind) for name, _, kind in uploads] == [
        ("snap 01.jpg", "image/jpeg"),
        ("garden.png", "image/png"),
        ("odd.bin", "image/png"),  # sniffed from the bytes when the caller gave no image type
    ]
    assert uploads[1][1] == png
    request = fake_detector.requests_to("/detect")[0]
    assert request.method == "POST"
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert "X-API-Key" not in request.headers


def test_video_frames_are_sent_as_jpeg(fake_detector, http_detector, tmp_path):
    sample = sample_video(str(write_video(tmp_path / "clip.mp4", seconds=2.0, fps=5)))

    http_detector.detect(sample.frames[0])

    name, content, kind = fake_detector.uploads[0]
    assert (name, kind) == ("clip_f000.jpg", "image/jpeg")
    assert content == sample.frames[0].data and content[:3] == b"\xff\xd8\xff"


def test_the_api_key_header_is_sent_when_configured(fake_detector, settings):
    settings.DETECTOR_URL = fake_detector.url
    settings.DETECTOR_API_KEY = "s3cret-key"

    get_detector().detect(jpeg_frame())
    get_detector().health()

    assert [r.headers.get("X-API-Key") for r in fake_detector.requests] == ["s3cret-key", "s3cret-key"]


def test_sniffing_knows_jpeg_and_png_only():
    assert sniff_image_mime(jpeg_bytes(64, 64)) == "image/jpeg"
    assert sniff_image_mime(png_bytes(64, 64)) == "image/png"
    assert sniff_image_mime(b"GIF89a") == "application/octet-stream"


# --- failures -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(500, "http_5xx"), (502, "http_5xx"), (503, "http_5xx"), (408, "http_4xx"), (429, "http_4xx")],
)
def test_server_errors_and_408_429_are_retryable(fake_detector, http_detector, status, error_type):
    fake_detector.fail("POST", "/detect", status=status)

    error = failure(http_detector)

    assert (error.error_type, error.retryable, error.counts_for_breaker) == (error_type, True, True)
    assert str(status) in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_client_errors_are_permanent_and_spare_the_breaker(fake_detector, http_detector, status):
    fake_detector.fail("POST", "/detect", status=status)

    error = failure(http_detector)

    assert (error.error_type, error.retryable, error.counts_for_breaker) == ("http_4xx", False, False)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"<html>Bad Gateway</html>", content_type="text/html"),
        Reply(body=b""),
        Reply(json=[{"class": "person"}]),
        Reply(json="detections"),
        Reply(status=302, body=b""),
    ],
)
def test_non_json_or_non_object_bodies_are_malformed_and_retryable(fake_detector, http_detector, reply):
    fake_detector.script("POST", "/detect", reply)

    error = failure(http_detector)

    assert (error.error_type, error.retryable, error.counts_for_breaker) == ("malformed_response", True, True)


def test_a_refused_connection_is_a_retryable_connection_error(fake_detector, http_detector):
    fake_detector.stop()

    error = failure(http_detector)

    assert (error.error_type, error.retryable) == ("connection_error", True)


def test_a_dropped_connection_is_a_connection_error(fake_detector, http_detector):
    fake_detector.script("POST", "/detect", Reply(drop=True))

    error = failure(http_detector)

    assert (error.error_type, error.retryable) == ("connection_error", True)


def test_a_slow_server_times_out_after_the_configured_total(fake_detector, settings):
    settings.DETECTOR_URL = fake_detector.url
    settings.DETECTOR_TIMEOUT_SECONDS = 0.2
    fake_detector.delay = 1.0
    detector = get_detector()

    started = time.monotonic()
    error = failure(detector)
    elapsed = time.monotonic() - started

    assert (error.error_type, error.retryable) == ("timeout", True)
    assert elapsed < 0.8


class TrickleHandler(BaseHTTPRequestHandler):
    """Answers 200 at once, then the JSON body a few bytes every 0.1 s: no single read is slow, the whole is."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"detections": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for start in range(0, len(body), 4):
                self.wfile.write(body[start : start + 4])
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass


@pytest.fixture
def trickle_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), TrickleHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_timeout_bounds_the_whole_exchange_not_each_read(trickle_server):
    detector = HttpDetector(trickle_server, timeout=0.35)

    started = time.monotonic()
    error = failure(detector)

    assert (error.error_type, error.retryable) == ("timeout", True)
    assert time.monotonic() - started < 0.9  # the body alone takes 0.5 s to trickle in


def test_an_oversized_response_is_malformed(fake_detector, http_detector):
    fake_detector.script("POST", "/detect", Reply(body=b" " * (17 * 1024 * 1024)))

    assert failure(http_detector).error_type == "malformed_response"


def test_an_invalid_detector_url_is_a_connection_error(settings):
    detector = HttpDetector("ftp://127.0.0.1:1", timeout=1)

    assert failure(detector).error_type == "connection_error"


# --- health ---------------------------------------------------------------------------------------------------


def test_health_probes_get_health(fake_detector, http_detector):
    assert http_detector.health() is True
    fake_detector.healthy = False
    assert http_detector.health() is False
    fake_detector.script("GET", "/health", Reply(status=202, json={}))
    assert http_detector.health() is True
    assert [r.path for r in fake_detector.requests] == ["/health"] * 3


def test_health_of_a_server_that_is_down_is_false(fake_detector):
    fake_detector.stop()

    assert HttpDetector(fake_detector.url, timeout=1).health() is False


# --- detect(): breaker and post-processing -------------------------------------------------------------------


def test_detect_post_processes_what_the_backend_returns(fake_detector, settings):
    settings.DETECTOR_URL = fake_detector.url
    fake_detector.detections = [
        detection(" Person ", 0.9, bbox=(-10, -20, 50, 60)),
        detection("car", 0.3),
        detection("dog", 0.8, bbox=(630, 470, 40, 40)),
        detection("cat", 0.8, bbox=(700, 10, 10, 10)),
    ]

    result, filtered = detect(jpeg_frame(width=640, height=480))

    assert summary(result) == [("person", 0.9, 0, 0, 40, 40), ("dog", 0.8, 630, 470, 10, 10)]
    assert filtered == 1
    assert result.model == "fake-rtdetr"


def test_detect_opens_the_breaker_after_consecutive_failures(fake_detector, settings):
    settings.DETECTOR_URL = fake_detector.url
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    fake_detector.fail("POST", "/detect", times=3, status=503)

    for _ in range(3):
        with pytest.raises(DetectorError):
            detect(jpeg_frame())
    with pytest.raises(CircuitOpenError) as raised:
        detect(jpeg_frame())

    assert raised.value.error_type == "circuit_open"
    assert fake_detector.detect_calls == 3  # the open breaker did not call the server
    assert breaker("detector").snapshot().state == "open"


def test_permanent_client_errors_do_not_open_the_breaker(fake_detector, settings):
    settings.DETECTOR_URL = fake_detector.url
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    fake_detector.fail("POST", "/detect", times=3, status=422)

    for _ in range(3):
        with pytest.raises(DetectorError):
            detect(jpeg_frame())
    fake_detector.detections = [person(0.95)]
    result, _ = detect(jpeg_frame())

    assert [d.object_type for d in result.detections] == ["person"]
    assert breaker("detector").snapshot().state == "closed"


def test_detect_with_the_embedded_backend_needs_no_server(settings):
    settings.DETECTOR_URL = None
    settings.DETECTOR_ONNX_PATH = None
    settings.DETECTOR_BACKEND = "auto"

    result, filtered = detect(jpeg_frame())

    assert result.model == "opencv-hog"
    assert filtered == 0


def test_an_undecodable_image_fails_permanently_without_calling_or_tripping_the_detector(fake_detector, settings):
    settings.DETECTOR_URL = fake_detector.url
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    garbage = Frame(data=b"\xff\xd8\xff" + b"\x00" * 20_000, filename="broken.jpg", mime_type="image/jpeg")

    with pytest.raises(DetectorError) as raised:
        detect(garbage)

    assert (raised.value.error_type, raised.value.retryable) == ("unreadable", False)
    assert fake_detector.detect_calls == 0
    assert breaker("detector").snapshot().state == "closed"
