"""The preview a file's validation decoded, handed over to its processing in the same process
(``pipeline.previews``): the same pixels a decode in the worker would give, only where that holds, bounded."""

from __future__ import annotations

import hashlib
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline import previews
from pipeline.detectors.base import Frame
from pipeline.ingest.validation import validate_media
from pipeline.previews import preview_keep, preview_take
from tests.images import jpeg_bytes, png_bytes
from tests.integration.ingest_support import truncated_jpeg


@pytest.fixture
def in_process(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # files are processed in this process: previews are worth keeping


def validated(tmp_path, data: bytes, name: str = "a.jpg") -> tuple[str | None, str]:
    path = tmp_path / name
    path.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    return validate_media(path, media_type="image", size=len(data), sha256=sha256), sha256


def rotated(data: bytes, orientation: int) -> bytes:
    image = Image.open(io.BytesIO(data))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=90)
    return buffer.getvalue()


def test_validation_keeps_exactly_the_preview_the_worker_would_decode(tmp_path, in_process):
    data = jpeg_bytes(1280, 720, seed=3)

    reason, sha256 = validated(tmp_path, data)
    pixels, scale = preview_take(sha256)

    assert reason is None
    expected_pixels, expected_scale = Frame(data=data, filename="a.jpg", mime_type="image/jpeg").preview
    assert scale == expected_scale == 0.25
    assert pixels.shape == (180, 320, 3) and np.array_equal(pixels, expected_pixels)
    assert preview_take(sha256) is None  # taken once


def test_a_grayscale_jpeg_is_kept_as_three_equal_channels(tmp_path, in_process):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (480, 640), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()

    _reason, sha256 = validated(tmp_path, data)
    pixels, _scale = preview_take(sha256)

    reduced = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_2)
    assert pixels.shape == reduced.shape == (240, 320, 3) and np.array_equal(pixels, reduced)


def test_nothing_is_kept_when_files_are_processed_in_another_process(tmp_path, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    reason, sha256 = validated(tmp_path, jpeg_bytes(1280, 720))

    assert reason is None and preview_take(sha256) is None


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (rotated(jpeg_bytes(640, 480), 6), "rotated.jpg", None),  # OpenCV rotates it, Pillow's draft does not
        (png_bytes(1280, 720), "a.png", None),  # no DCT scaling: the worker decodes it in full anyway
        (truncated_jpeg(), "cut.jpg", "truncated"),
    ],
)
def test_only_a_preview_a_later_decode_would_reproduce_is_kept(tmp_path, in_process, data, name, reason):
    found, sha256 = validated(tmp_path, data, name)

    assert found == reason
    assert preview_take(sha256) is None


def test_the_store_is_bounded_by_bytes_oldest_out_first(in_process):
    image = Image.open(io.BytesIO(jpeg_bytes(3840, 2160)))
    image.draft("RGB", (480, 270))
    image.load()
    per_entry = 480 * 270 * 3
    fits = previews.MAX_STORED_BYTES // per_entry

    for number in range(fits + 5):
        preview_keep(f"sha{number}", image, 3840)

    assert preview_take("sha0") is None and preview_take("sha4") is None
    assert preview_take("sha5") is not None and preview_take(f"sha{fits + 4}")[1] == 0.125


def test_a_frame_given_a_preview_uses_it_until_full_pixels_are_decoded():
    data = jpeg_bytes(1280, 720)
    given = (np.zeros((180, 320, 3), np.uint8), 0.25)
    frame = Frame(data=data, filename="a.jpg", mime_type="image/jpeg", _preview=given)
    decoded = Frame(data=data, filename="a.jpg", mime_type="image/jpeg", _preview=given)
    decoded.pixels  # noqa: B018 - the embedded detector decodes in full: its pixels are better than a preview

    assert frame.preview is given and "pixels" not in frame.__dict__
    assert decoded.preview[1] == 1.0 and decoded.preview[0].shape == (720, 1280, 3)


def test_a_cmyk_jpeg_is_left_to_the_worker_s_own_decode(tmp_path, in_process):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)).convert("CMYK").save(
        buffer, "JPEG"
    )

    reason, sha256 = validated(tmp_path, buffer.getvalue())

    assert reason is None and preview_take(sha256) is None


def test_keeping_the_same_content_twice_holds_one_preview_and_no_hash_holds_none(in_process):
    image = Image.open(io.BytesIO(jpeg_bytes(1280, 720)))
    image.draft("RGB", (320, 180))
    image.load()

    preview_keep("same", image, 1280)
    preview_keep("same", image, 1280)
    preview_keep("", image, 1280)

    assert preview_take("same")[0].shape == (180, 320, 3)
    assert preview_take("same") is None and preview_take("") is None and preview_take(None) is None
    assert previews._stored_bytes == 0  # nothing left behind: the replaced entry's bytes were given back
