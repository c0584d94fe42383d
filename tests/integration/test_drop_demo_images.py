"""``manage.py drop_demo_images``: realistic synthetic JPEGs the pipeline accepts and sees motion in."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from pipeline.detectors.base import Frame
from pipeline.detectors.opencv import OpenCVDetector
from pipeline.management.commands.drop_demo_images import write_atomically


def drop(*args: str) -> list[Path]:
    out = io.StringIO()
    call_command("drop_demo_images", *args, stdout=out)
    return [Path(line) for line in out.getvalue().splitlines()]


def test_writes_five_unique_jpegs_into_the_front_door_folder_of_the_camera_root(foscam_root):
    paths = drop("--interval", "0")

    assert len(paths) == 5
    assert all(path.parent == Path(foscam_root) / "front_door" for path in paths)
    assert sorted(Path(foscam_root, "front_door").iterdir()) == sorted(paths)  # nothing else, no .tmp left
    contents = [path.read_bytes() for path in paths]
    assert len({hashlib.sha256(data).hexdigest() for data in contents}) == 5
    for data in contents:
        assert len(data) >= 10 * 1024
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.size, image.mode) == ("JPEG", (1280, 720), "RGB")


def test_options_choose_the_folder_the_count_and_the_size(tmp_path):
    paths = drop(
        "--root",
        str(tmp_path / "elsewhere"),
        "--camera",
        "Back Yard",
        "--count",
        "2",
        "--interval",
        "0.01",
        "--width",
        "640",
        "--height",
        "480",
    )

    assert [path.parent for path in paths] == [tmp_path / "elsewhere" / "Back Yard"] * 2
    assert all(path.suffix == ".jpg" and path.name.startswith("Back Yard_") for path in paths)
    assert Image.open(paths[0]).size == (640, 480)


def test_two_runs_never_write_the_same_content(foscam_root):
    first = drop("--count", "1", "--interval", "0")
    second = drop("--count", "1", "--interval", "0")

    assert first[0] != second[0]
    assert first[0].read_bytes() != second[0].read_bytes()


def test_the_embedded_detector_sees_motion_between_consecutive_frames(tmp_path):
    paths = drop("--root", str(tmp_path), "--count", "4", "--interval", "0")
    detector = OpenCVDetector(motion_enabled=True)

    results = [
        detector.detect(Frame(data=path.read_bytes(), filename=path.name, mime_type="image/jpeg", camera_id="demo"))
        for path in paths
    ]

    motion_per_frame = [[d for d in result.detections if d.object_type == "motion"] for result in results]
    assert motion_per_frame[0] == []  # the first frame of a camera has nothing to compare with
    assert all(motion for motion in motion_per_frame[1:])
    assert all(d.confidence >= 0.5 for motion in motion_per_frame[1:] for d in motion)


@pytest.mark.django_db
def test_ingest_accepts_every_demo_image_for_an_auto_created_camera(foscam_root):
    from pipeline.ingest import ACCEPTED, file_ingest

    paths = drop("--count", "3", "--interval", "0")

    outcomes = [file_ingest(path) for path in paths]

    assert [outcome.result for outcome in outcomes] == [ACCEPTED] * 3
    assert {outcome.camera.id for outcome in outcomes} == {"front_door"}
    assert [outcome.file.mime_type for outcome in outcomes] == ["image/jpeg"] * 3


@pytest.mark.parametrize("camera", ["../outside", "a/b", ".hidden", ""])
def test_a_camera_that_is_not_one_folder_name_is_refused(camera, foscam_root):
    with pytest.raises(CommandError, match="--camera must be one folder name"):
        drop("--camera", camera, "--interval", "0")

    assert list(Path(foscam_root).iterdir()) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--count", "0"),
        ("--count", "x"),
        ("--interval", "-1"),
        ("--interval", "nan"),
        ("--interval", "soon"),
        ("--width", "0"),
    ],
)
def test_bad_numbers_are_refused(option, value):
    with pytest.raises(CommandError, match=option.removeprefix("--")):
        drop(option, value)


def test_a_tiny_size_is_refused():
    with pytest.raises(CommandError, match="at least 160 and 120"):
        drop("--width", "100", "--height", "100")


def test_a_root_that_cannot_be_created_is_reported(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    with pytest.raises(CommandError, match="Cannot create"):
        drop("--root", str(blocker), "--interval", "0")


def test_write_atomically_renames_into_place_and_never_overwrites(tmp_path):
    target = tmp_path / "cam" / "shot.jpg"
    target.parent.mkdir()

    first = write_atomically(target, b"one")
    second = write_atomically(target, b"two")
    third = write_atomically(target, b"three")

    assert (first, second, third) == (target, tmp_path / "cam" / "shot_2.jpg", tmp_path / "cam" / "shot_3.jpg")
    assert [p.read_bytes() for p in (first, second, third)] == [b"one", b"two", b"three"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["shot.jpg", "shot_2.jpg", "shot_3.jpg"]
