"""Detection thumbnails (CONTRACT §4.9, §10): exact size, letterbox, box and label colours, image and video
sources, missing or unreadable sources."""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFont

from events.models import Detection
from media_serving import thumbnails
from media_serving.thumbnails import render_thumbnail, thumbnail_generate, thumbnail_path_for
from tests.factories import DetectionFactory
from tests.images import write_jpeg, write_video

GREY = (128, 128, 128)
PERSON = (231, 72, 86)
VEHICLE = (59, 130, 246)
ANIMAL = (118, 185, 0)
TWO_WHEELER = (255, 184, 0)
MOTION = (168, 85, 247)
WHITE = (255, 255, 255)


def grey_frame(width: int = 640, height: int = 480) -> np.ndarray:
    return np.full((height, width, 3), GREY[0], dtype=np.uint8)


def detection(object_type: str = "person", confidence: float = 0.93, box=(200, 200, 100, 100), **fields) -> Detection:
    x, y, width, height = box
    return Detection(
        id=fields.pop("id", 1),
        object_type=object_type,
        confidence=confidence,
        bbox_x=x,
        bbox_y=y,
        bbox_width=width,
        bbox_height=height,
        **fields,
    )


def as_jpeg_pixels(image: Image.Image, quality: int = 85) -> np.ndarray:
    """RGB pixels after a JPEG round trip at the thumbnail quality, as a client would see them."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=np.int32)


def distance(pixel, colour) -> float:
    return float(np.linalg.norm(np.asarray(pixel, dtype=np.int32) - np.asarray(colour, dtype=np.int32)))


def near(pixel, colour, tolerance: float = 45) -> bool:
    return distance(pixel, colour) <= tolerance


LABEL_HEIGHT = 19  # font ascent 12 + descent 3 + 2 × 2 px padding


def glyph_pixels(region: np.ndarray, text_colour, background) -> int:
    """Pixels of ``region`` closer to the text colour than to the label background."""
    to_text = np.linalg.norm(region - np.asarray(text_colour), axis=2)
    to_background = np.linalg.norm(region - np.asarray(background), axis=2)
    return int(np.sum(to_text < to_background))


# --- Size and letterbox -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected_content"),
    [
        ((640, 480), (0, 0, 319, 239)),  # same aspect: fills the thumbnail
        ((640, 240), (0, 60, 319, 179)),  # wide: bars above and below
        ((240, 480), (100, 0, 219, 239)),  # tall: bars left and right
        ((80, 60), (0, 0, 319, 239)),  # small: scaled up to fit
        ((1920, 1080), (0, 30, 319, 209)),  # 16:9
    ],
)
def test_thumbnail_is_exactly_the_configured_size_with_the_frame_centred_on_black(source, expected_content):
    width, height = source
    image = render_thumbnail(grey_frame(width, height), detection(box=(0, 0, 1, 1), object_type="person"))

    assert image.size == (320, 240)
    pixels = np.asarray(image, dtype=np.int32)
    left, top, right, bottom = expected_content
    centre = ((left + right) // 2, (top + bottom) // 2)
    assert near(pixels[centre[1], centre[0]], GREY, 2)
    assert near(pixels[bottom, right], GREY, 2)
    if top > 0:
        assert tuple(pixels[top - 1, centre[0]]) == (0, 0, 0)
        assert tuple(pixels[0, centre[0]]) == (0, 0, 0) and tuple(pixels[239, centre[0]]) == (0, 0, 0)
    if left > 0:
        assert tuple(pixels[centre[1], left - 1]) == (0, 0, 0)
        assert tuple(pixels[centre[1], 0]) == (0, 0, 0) and tuple(pixels[centre[1], 319]) == (0, 0, 0)


def test_thumbnail_size_follows_the_settings(settings):
    settings.THUMBNAIL_WIDTH, settings.THUMBNAIL_HEIGHT = 200, 200

    image = render_thumbnail(grey_frame(640, 480), detection())

    assert image.size == (200, 200)
    pixels = np.asarray(image, dtype=np.int32)
    assert tuple(pixels[10, 100]) == (0, 0, 0)  # 640×480 → 200×150, bars of 25 px above and below
    assert near(pixels[100, 100], GREY, 2)


# --- Box and label --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("object_type", "colour"),
    [
        ("person", PERSON),
        ("car", VEHICLE),
        ("truck", VEHICLE),
        ("bus", VEHICLE),
        ("dog", ANIMAL),
        ("cat", ANIMAL),
        ("bird", ANIMAL),
        ("bicycle", TWO_WHEELER),
        ("motorcycle", TWO_WHEELER),
        ("motion", MOTION),
    ],
)
def test_box_and_label_background_use_the_class_family_colour_with_white_text(object_type, colour):
    pixels = as_jpeg_pixels(render_thumbnail(grey_frame(), detection(object_type)))

    # 640×480 → 320×240 (scale 0.5): the box (200, 200, 100, 100) spans (100, 100)–(149, 149), 3 px wide.
    assert near(pixels[125, 101], colour)  # left edge
    assert near(pixels[148, 125], colour)  # bottom edge
    assert near(pixels[125, 125], GREY, 12)  # inside the box: untouched
    assert near(pixels[125, 106], GREY, 25)  # just past the 3 px line
    label = pixels[100 - LABEL_HEIGHT : 100, 100:150]  # the label sits directly above the box
    assert near(label[1, 1], colour) and near(label[-2, 1], colour)  # padding: the filled background
    assert near(pixels[100 - LABEL_HEIGHT - 4, 101], GREY, 30)  # nothing above the label
    assert glyph_pixels(label, WHITE, colour) > 30  # white glyphs


def test_other_classes_get_a_white_box_with_black_text():
    pixels = as_jpeg_pixels(render_thumbnail(grey_frame(), detection("umbrella")))

    assert near(pixels[125, 101], WHITE)
    label = pixels[100 - LABEL_HEIGHT : 100, 100:150]
    assert near(label[1, 1], WHITE)
    assert glyph_pixels(label, (0, 0, 0), WHITE) > 30  # black glyphs


def label_background_width(image: Image.Image, left: int, top_row: int, colour) -> int:
    row = np.asarray(image, dtype=np.int32)[top_row]
    width = 0
    while left + width < row.shape[0] and tuple(row[left + width]) == colour:
        width += 1
    return width


@pytest.mark.parametrize(("confidence", "text"), [(0.9, "person 0.90"), (0.12345, "person 0.12"), (1.0, "person 1.00")])
def test_label_reads_class_and_confidence_with_two_decimals(confidence, text):
    image = render_thumbnail(grey_frame(), detection("person", confidence))

    font = ImageFont.load_default(size=12)
    expected = round(font.getlength(text)) + 4
    # The top padding row of the label is solid background, as wide as the text plus 2 × 2 px padding.
    assert label_background_width(image, 100, 100 - LABEL_HEIGHT, PERSON) == expected


def test_label_goes_inside_the_box_when_there_is_no_room_above():
    pixels = as_jpeg_pixels(render_thumbnail(grey_frame(), detection("car", box=(200, 0, 200, 200))))

    # The box starts on the top edge: the label is drawn at its top, inside the picture.
    assert near(pixels[1, 101], VEHICLE)
    assert near(pixels[8, 101], VEHICLE)  # label background below the top line
    assert glyph_pixels(pixels[0:LABEL_HEIGHT, 100:140], WHITE, VEHICLE) > 30
    assert near(pixels[LABEL_HEIGHT + 3, 110], GREY, 25)  # inside the box, below the label: untouched


def test_label_stays_inside_the_picture_for_a_box_on_the_right_edge():
    pixels = as_jpeg_pixels(render_thumbnail(grey_frame(640, 240), detection("person", box=(600, 100, 40, 40))))

    # 640×240 → 320×120 at y 60; the box is (300, 110)–(319, 129); the label is shifted left to fit.
    assert near(pixels[120, 318], PERSON)
    label_row = pixels[100, :]
    covered = [x for x in range(320) if near(label_row[x], PERSON, 60) or np.all(label_row[x] > 215)]
    assert covered and covered[-1] <= 319 and covered[0] < 300
    assert tuple(np.asarray(label_row[0])) == tuple(np.asarray(pixels[100, 0]))


def test_a_box_entirely_outside_the_frame_draws_nothing():
    image = render_thumbnail(grey_frame(), detection(box=(700, 500, 30, 30)))

    assert np.all(np.asarray(image) == GREY[0])


def test_greyscale_and_bgra_frames_are_accepted():
    grey = np.full((240, 320), 128, dtype=np.uint8)
    bgra = np.dstack([grey_frame(320, 240), np.full((240, 320), 255, dtype=np.uint8)])

    for frame in (grey, bgra):
        image = render_thumbnail(frame, detection(box=(100, 100, 50, 50)))
        assert image.size == (320, 240)
        assert near(np.asarray(image)[120, 101], PERSON, 2)


def test_colours_are_read_from_bgr_pixels():
    frame = np.zeros((240, 320, 3), dtype=np.uint8)
    frame[:, :] = (255, 0, 0)  # pure blue in OpenCV's BGR order

    pixels = np.asarray(render_thumbnail(frame, detection(box=(0, 0, 1, 1))), dtype=np.int32)

    assert tuple(pixels[200, 200]) == (0, 0, 255)


# --- thumbnail_generate -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_generate_from_an_image_file_writes_the_jpeg_and_stores_its_path(foscam_root, data_dir):
    source = write_jpeg(foscam_root / "front" / "a.jpg", 640, 480, seed=3)
    row = DetectionFactory(file_path=str(source), bbox_x=10, bbox_y=10, bbox_width=100, bbox_height=100)

    path = thumbnail_generate(row)

    assert path == str(data_dir / "thumbnails" / f"{row.id}_thumb.jpg") == str(thumbnail_path_for(row.id))
    row.refresh_from_db()
    assert row.thumbnail_path == path
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.size == (320, 240)
    assert [p.name for p in (data_dir / "thumbnails").iterdir()] == [f"{row.id}_thumb.jpg"]  # no temporary left


@pytest.mark.django_db
def test_generate_uses_the_given_pixels_without_reading_the_source(data_dir):
    row = DetectionFactory(file_path="/nonexistent/a.jpg", object_type="dog", bbox_x=0, bbox_y=0)
    frame = grey_frame(320, 240)

    path = thumbnail_generate(row, frame)

    assert path is not None
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int32)
    assert near(pixels[60, 1], ANIMAL)


def test_a_reduced_frame_gives_the_same_thumbnail_box_as_the_full_frame():
    full = grey_frame(1280, 720)
    box = detection("person", box=(400, 200, 200, 300))

    from_full = np.asarray(render_thumbnail(full, box), dtype=np.int32)
    from_quarter = np.asarray(render_thumbnail(full[::4, ::4].copy(), box, pixel_scale=0.25), dtype=np.int32)

    person_mask = lambda pixels: np.linalg.norm(pixels - np.asarray(PERSON), axis=2) < 30  # noqa: E731
    assert person_mask(from_full).sum() > 300
    assert np.array_equal(person_mask(from_full), person_mask(from_quarter))


@pytest.mark.django_db
def test_several_thumbnails_are_recorded_with_one_update(data_dir, django_assert_num_queries):
    rows = [DetectionFactory(file_path="/nonexistent/a.jpg", bbox_x=0, bbox_y=0) for _ in range(3)]
    missing = DetectionFactory(file_path="/nonexistent/b.jpg")

    with django_assert_num_queries(1):
        paths = thumbnails.thumbnails_generate([*((row, (grey_frame(), 1.0)) for row in rows), (missing, None)])

    assert paths == [str(thumbnail_path_for(row.id)) for row in rows] + [None]
    stored = dict(Detection.objects.values_list("id", "thumbnail_path"))
    assert [stored[row.id] for row in rows] == paths[:3] and stored[missing.id] in (None, "")
    assert all(os.path.getsize(path) > 0 for path in paths[:3])


@pytest.mark.django_db
def test_generate_honours_the_quality_setting(settings, foscam_root):
    source = write_jpeg(foscam_root / "front" / "a.jpg", 640, 480, seed=4)
    low, high = DetectionFactory(file_path=str(source)), DetectionFactory(file_path=str(source))
    settings.THUMBNAIL_QUALITY = 10
    small = thumbnail_generate(low)
    settings.THUMBNAIL_QUALITY = 95
    large = thumbnail_generate(high)

    assert thumbnail_path_for(low.id).stat().st_size < thumbnail_path_for(high.id).stat().st_size / 2
    assert small and large


@pytest.mark.django_db
def test_generate_from_a_video_uses_the_frame_at_the_detection_offset(foscam_root):
    video = write_video(foscam_root / "drive" / "clip.mp4", seconds=4.0, fps=5, width=320, height=240, seed=7)
    row = DetectionFactory(
        file_path=str(video),
        file_type="video/mp4",
        media_type="video",
        frame_time_seconds=2.0,
        object_type="car",
        bbox_x=40,
        bbox_y=60,
        bbox_width=120,
        bbox_height=80,
    )

    path = thumbnail_generate(row)

    assert path is not None
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    frame_at_two_seconds = thumbnails.read_video_frame(str(video), 2.0)
    assert np.array_equal(frame_at_two_seconds, frames[10])
    expected = as_jpeg_pixels(render_thumbnail(frames[10], row))
    with Image.open(path) as image:
        written = np.asarray(image.convert("RGB"), dtype=np.int32)
    other = as_jpeg_pixels(render_thumbnail(frames[0], row))
    assert np.abs(written - expected).mean() < np.abs(written - other).mean()
    assert near(written[60 + 40, 41], VEHICLE)


@pytest.mark.django_db
def test_a_video_offset_past_the_end_uses_the_last_frame(foscam_root):
    video = write_video(foscam_root / "drive" / "short.mp4", seconds=1.0, fps=5, seed=8)

    frame = thumbnails.read_video_frame(str(video), 30.0)

    assert frame is not None and frame.shape == (240, 320, 3)


@pytest.mark.django_db
def test_a_missing_source_returns_none_and_writes_nothing(data_dir, caplog):
    row = DetectionFactory(file_path=str(data_dir / "gone.jpg"))

    assert thumbnail_generate(row) is None

    row.refresh_from_db()
    assert row.thumbnail_path is None
    assert not thumbnail_path_for(row.id).exists()
    assert "missing" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("content", [b"", b"not an image at all" * 1000], ids=["empty", "garbage"])
def test_an_unreadable_source_returns_none(foscam_root, content, caplog):
    broken = foscam_root / "front" / "broken.jpg"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(content)
    row = DetectionFactory(file_path=str(broken))

    assert thumbnail_generate(row) is None
    assert row.thumbnail_path is None
    assert "unreadable" in caplog.text


@pytest.mark.django_db
def test_an_unreadable_video_returns_none(foscam_root):
    broken = foscam_root / "drive" / "broken.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\x00" * 50_000)
    row = DetectionFactory(file_path=str(broken), media_type="video", frame_time_seconds=1.0)

    assert thumbnail_generate(row) is None


@pytest.mark.django_db
def test_a_write_failure_is_logged_not_raised(settings, tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    settings.HSI_DATA_DIR = blocker  # thumbnails/ cannot be created under a file
    row = DetectionFactory(file_path="/nonexistent.jpg")

    assert thumbnail_generate(row, grey_frame()) is None

    row.refresh_from_db()
    assert row.thumbnail_path is None
    assert "Could not write the thumbnail" in caplog.text


@pytest.mark.django_db
def test_regenerating_replaces_the_file(foscam_root):
    source = write_jpeg(foscam_root / "front" / "a.jpg", seed=1)
    row = DetectionFactory(file_path=str(source), object_type="person")
    first = thumbnail_generate(row)
    before = thumbnail_path_for(row.id).read_bytes()
    row.object_type = "car"

    second = thumbnail_generate(row)

    assert first == second
    assert thumbnail_path_for(row.id).read_bytes() != before
