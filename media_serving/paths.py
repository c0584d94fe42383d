"""Media path rules (CONTRACT §6.4), run in the contract's order on the decoded request path.

Rules 1–3 are pure string checks (no file-system access, so a refused name never reveals whether it exists);
rules 5–6 resolve the path with ``realpath`` (symlinks followed) and require it to stay inside the base folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from hsi.api.errors import ApiError

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
}
CAMERA_EXTENSIONS = frozenset(CONTENT_TYPES)
THUMBNAIL_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})


class MediaPathError(ApiError):
    """A refused media path; the problem body carries the requested relative ``path`` (§0.6)."""

    def __init__(self, detail: str, *, code: str, status_code: int, path: str):
        super().__init__(detail, code=code, status_code=status_code, path=path)


def path_traversal(path: str) -> MediaPathError:
    return MediaPathError("Path traversal detected", code="path_traversal", status_code=403, path=path)


def check_identifier(value: str, *, path: str) -> None:
    """Rule 1 for a single path parameter such as ``camera_id``."""
    if "\x00" in value or "\\" in value or value.startswith("/") or value in (".", ".."):
        raise path_traversal(path)


def check_relative_path(path: str, *, allowed_extensions: frozenset[str]) -> str:
    """Rules 1–3 on the decoded relative ``path``; returns its lower-case extension (a key of CONTENT_TYPES)."""
    if "\x00" in path or "\\" in path or path.startswith("/"):
        raise path_traversal(path)
    segments = path.split("/")
    if any(segment == ".." for segment in segments):
        raise path_traversal(path)
    if any(segment.startswith(".") for segment in segments):
        raise MediaPathError("Access to hidden files is forbidden", code="forbidden", status_code=403, path=path)
    extension = os.path.splitext(segments[-1])[1].lower()
    if extension not in allowed_extensions:
        raise MediaPathError(
            f"File type not allowed: {extension or '(none)'}", code="file_type_not_allowed", status_code=403, path=path
        )
    return extension


def is_inside(candidate: str, root: str) -> bool:
    """Whether the already resolved ``candidate`` is ``root`` itself or below it."""
    return candidate == root or candidate.startswith(root.rstrip(os.sep) + os.sep)


def resolve_media_file(base: Path, path: str, *, root: Path | None = None) -> Path:
    """Rules 5–6: the regular file ``base / path`` after following every symlink, which must stay inside
    ``realpath(base)`` (and ``base`` inside ``realpath(root)`` when given)."""
    real_base = os.path.realpath(base)
    outside = MediaPathError(
        "Access denied - path outside allowed directory", code="path_traversal", status_code=403, path=path
    )
    if root is not None and not is_inside(real_base, os.path.realpath(root)):
        raise outside
    target = os.path.realpath(os.path.join(real_base, path))
    if not is_inside(target, real_base) or target == real_base:
        raise outside
    if not os.path.isfile(target):
        raise MediaPathError("File not found", code="not_found", status_code=404, path=path)
    return Path(target)
