"""``manage.py drop_demo_images``: write camera-like JPEGs into a camera folder to see the pipeline work.

Each run draws one synthetic scene (sky, a house wall with a door, a path across a lawn) and a figure walking
across it, one frame per image, with sensor grain and an on-screen timestamp like a real camera. Consecutive
frames differ where the figure moved, so the embedded OpenCV detector reports motion (CONTRACT §4.3); the grain
makes every file unique, so no run dedups against an earlier one (§4.2). Each file is written as ``<name>.tmp``
and renamed into place, so the watcher (which ignores ``.tmp`` names, §4.1) only ever sees complete images.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

import cv2
import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

JPEG_QUALITY = 90
GRAIN = 6  # ± levels of per-frame sensor noise: unique bytes, far below the motion threshold (25)
STEP_FRACTION = 0.12  # how far the figure walks between frames, as a fraction of the width


class Command(BaseCommand):
    help = "Write synthetic camera JPEGs (a figure walking across a scene) into <root>/<camera>/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--camera", default="front_door", help="camera folder name (default front_door)")
        parser.add_argument("--count", type=_positive_int, default=5, help="number of images (default 5)")
        parser.add_argument("--interval", type=_non_negative_float, default=1.0, help="seconds between images")
        parser.add_argument("--root", default=None, help="camera root (default FOSCAM_BASE_PATH)")
        parser.add_argument("--width", type=_positive_int, default=1280, help="image width (default 1280)")
        parser.add_argument("--height", type=_positive_int, default=720, help="image height (default 720)")

    def handle(self, *args, **options) -> None:
        folder = _camera_folder(Path(options["root"] or settings.FOSCAM_BASE_PATH), options["camera"])
        width, height = options["width"], options["height"]
        if width < 160 or height < 120:
            raise CommandError("--width and --height must be at least 160 and 120")
        rng = np.random.default_rng()
        background = demo_background(width, height, rng)
        for index in range(options["count"]):
            if index and options["interval"]:
                time.sleep(options["interval"])
            now = dt.datetime.now().astimezone()
            data = demo_frame(background, index, rng, label=f"{options['camera']}  {now:%Y-%m-%d %H:%M:%S}")
            path = write_atomically(folder / f"{options['camera']}_{now:%Y%m%d-%H%M%S-%f}.jpg", data)
            self.stdout.write(str(path))
            self.stdout.flush()


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number of seconds ≥ 0, got {value!r}")
    return number


def _camera_folder(root: Path, camera: str) -> Path:
    if not camera or camera.startswith(".") or "/" in camera or "\\" in camera or camera == "..":
        raise CommandError(f"--camera must be one folder name, got {camera!r}")
    folder = root / camera
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"Cannot create {folder}: {exc.strerror}") from None
    return folder


def demo_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """The still scene (BGR): sky, a wall with a door and windows, a lawn with a path; textured, not flat."""
    scene = np.zeros((height, width, 3), np.float32)
    horizon = int(height * 0.45)
    sky_top, sky_bottom = np.array([200, 150, 90], np.float32), np.array([235, 215, 190], np.float32)
    shade = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    scene[:horizon] = sky_top + (sky_bottom - sky_top) * shade
    scene[horizon:] = (60, 130, 70)  # lawn
    wall_left, wall_right, wall_top = int(width * 0.05), int(width * 0.6), int(height * 0.15)
    scene[wall_top:horizon, wall_left:wall_right] = (150, 170, 190)
    door_left = int(width * 0.28)
    scene[int(height * 0.22) : horizon, door_left : door_left + int(width * 0.07)] = (40, 60, 100)
    for window_left in (int(width * 0.1), int(width * 0.42)):
        scene[int(height * 0.2) : int(height * 0.33), window_left : window_left + int(width * 0.1)] = (120, 90, 60)
    path = np.array(
        [[door_left, horizon], [door_left + int(width * 0.07), horizon], [int(width * 0.75), height], [0, height]],
        np.int32,
    )
    cv2.fillPoly(scene, [path], (150, 155, 160))
    cells = rng.normal(0, 18, (height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
    texture = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC)
    scene += cv2.GaussianBlur(texture, (0, 0), 1.5) + rng.normal(0, 8, scene.shape).astype(np.float32)
    return np.clip(scene, 0, 255).astype(np.uint8)


def figure_left(index: int, width: int, figure_width: int) -> int:
    """Where the figure stands in frame ``index``: walking back and forth, ``STEP_FRACTION`` of the width a frame."""
    span = max(width - figure_width - 2 * int(width * 0.05), 1)
    travelled = int(index * STEP_FRACTION * width) % (2 * span)
    offset = travelled if travelled < span else 2 * span - travelled
    return int(width * 0.05) + offset


def demo_frame(background: np.ndarray, index: int, rng: np.random.Generator, *, label: str) -> bytes:
    """Frame ``index`` as JPEG bytes: the scene, the walking figure, grain and the on-screen label."""
    height, width = background.shape[:2]
    frame = background.copy()
    figure_height = int(height * 0.5)
    figure_width = max(int(figure_height * 0.36), 8)
    left, top = figure_left(index, width, figure_width), int(height * 0.42)
    _draw_figure(frame, left, top, figure_width, figure_height)
    grain = rng.integers(-GRAIN, GRAIN + 1, frame.shape, dtype=np.int16)
    frame = np.clip(frame.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    scale = max(height / 720, 0.4)
    cv2.putText(frame, label, (12, int(32 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR array
        raise CommandError("OpenCV could not encode a JPEG")
    return encoded.tobytes()


def _draw_figure(frame: np.ndarray, left: int, top: int, width: int, height: int) -> None:
    """A person-like silhouette: head, jacket with arms, trousers with two legs."""
    centre = left + width // 2
    head = max(width // 4, 3)
    cv2.circle(frame, (centre, top + head), head, (120, 150, 200), -1)
    torso_top, torso_bottom = top + 2 * head, top + int(height * 0.55)
    cv2.rectangle(frame, (left, torso_top), (left + width, torso_bottom), (50, 40, 150), -1)
    leg = max(width // 3, 2)
    for leg_left in (left + width // 10, left + width - width // 10 - leg):
        cv2.rectangle(frame, (leg_left, torso_bottom), (leg_left + leg, top + height), (60, 45, 35), -1)


def write_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``<path>.tmp``, flush it to disk, then rename it to ``path`` (a new name if taken)."""
    wanted, counter = path, 1
    while path.exists():
        counter += 1
        path = wanted.with_name(f"{wanted.stem}_{counter}{wanted.suffix}")
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path
