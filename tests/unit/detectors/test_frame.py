"""Frame: size read from the header (no decode for backends that never look at pixels), EXIF rotation as OpenCV
decodes it, and the reduced-size preview thumbnails and colour histograms share."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.detectors.base import DetectorError, Frame
from tests.images import jpeg_bytes, png_bytes


def frame(data: bytes, mime_type: str = "image/jpeg") -> Frame:
    return Frame(data=data, filename="a.jpg", mime_type=mime_type, camera_id="front_door")


def decoded_shape(data: bytes) -> tuple[int, int]:
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return pixels.shape[1], pixels.shape[0]


def rotated_jpeg(width: int, height: int, orientation: int, image_format: str = "JPEG") -> bytes:
    image = Image.open(io.BytesIO(jpeg_bytes(width, height)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    extra = {"save_all": True, "append_images": [image.copy()]} if image_format == "MPO" else {}
    image.save(buffer, format=image_format, exif=exif.tobytes(), **extra)
    return buffer.getvalue()


def test_the_size_comes_from_the_header_without_decoding_the_pixels():
    given = frame(jpeg_bytes(1280, 720))

    assert (given.width, given.height) == (1280, 720)
    assert "pixels" not in given.__dict__


@pytest.mark.parametrize(("orientation", "expected"), [(1, (640, 480)), (3, (640, 480)), (6, (480, 640))])
def test_an_exif_rotation_gives_the_size_the_decoder_produces(orientation, expected):
    data = rotated_jpeg(640, 480, orientation)

    assert frame(data).size == expected == decoded_shape(data)


@pytest.mark.parametrize("image_format", ["MPO", "PNG"])  # a JPEG with a second picture (phones), a PNG with eXIf
def test_a_rotated_image_of_another_format_also_gets_the_decoded_size(image_format):
    data = rotated_jpeg(640, 480, 6, image_format)
    assert Image.open(io.BytesIO(data)).format == image_format

    assert frame(data, "image/png" if image_format == "PNG" else "image/jpeg").size == decoded_shape(data)


def test_the_size_of_decoded_pixels_is_their_shape():
    given = Frame(data=b"", filename="f.jpg", mime_type="image/jpeg", _pixels=np.zeros((90, 160, 3), np.uint8))

    assert given.size == (160, 90)


def test_undecodable_data_fails_with_the_decode_error():
    with pytest.raises(DetectorError) as raised:
        _ = frame(b"not an image at all").size
    assert raised.value.error_type == "unreadable" and not raised.value.retryable


@pytest.mark.parametrize(
    ("size", "expected_shape", "expected_scale"),
    [
        ((1280, 720), (180, 320, 3), 0.25),  # 1/4 still covers the 320-wide letterboxed thumbnail
        ((640, 480), (240, 320, 3), 0.5),
        ((2560, 1920), (240, 320, 3), 0.125),  # at most 1/8
        ((320, 240), (240, 320, 3), 1.0),  # already thumbnail size: the full decode
    ],
)
def test_a_jpeg_preview_is_decoded_at_the_smallest_scale_that_covers_a_thumbnail(size, expected_shape, expected_scale):
    given = frame(jpeg_bytes(*size))

    pixels, scale = given.preview

    assert pixels.shape == expected_shape and scale == expected_scale


def test_the_preview_reuses_pixels_decoded_already_and_other_formats_decode_in_full():
    jpeg = frame(jpeg_bytes(1280, 720))
    full = jpeg.pixels
    png = frame(png_bytes(1280, 720), mime_type="image/png")

    assert jpeg.preview[0] is full and jpeg.preview[1] == 1.0
    assert png.preview[0].shape == (720, 1280, 3) and png.preview[1] == 1.0


def test_the_preview_follows_the_thumbnail_settings(settings):
    settings.THUMBNAIL_WIDTH, settings.THUMBNAIL_HEIGHT = 640, 480

    pixels, scale = frame(jpeg_bytes(1280, 960)).preview

    assert pixels.shape == (480, 640, 3) and scale == 0.5


def test_after_detection_only_a_preview_size_copy_of_decoded_pixels_is_kept():
    decoded = frame(jpeg_bytes(1280, 720))
    full = decoded.pixels
    untouched = frame(jpeg_bytes(1280, 720))

    decoded.keep_preview_only()
    untouched.keep_preview_only()  # nothing decoded: nothing to shrink, and no decode now

    pixels, scale = decoded.preview
    assert pixels.shape == (180, 320, 3) and scale == 0.25
    assert "pixels" not in decoded.__dict__ and decoded.size == (1280, 720)
    assert abs(float(pixels.mean()) - float(full.mean())) < 2  # the same picture, smaller
    assert "pixels" not in untouched.__dict__ and "preview" not in untouched.__dict__


def test_a_sliver_of_an_image_shrinks_to_at_least_one_pixel_across():
    sliver = frame(jpeg_bytes(7, 4000))
    sliver.pixels  # noqa: B018 - decoded, as the embedded detector would

    sliver.keep_preview_only()

    pixels, scale = sliver.preview
    assert pixels.shape == (500, 1, 3) and scale == pytest.approx(1 / 7)
