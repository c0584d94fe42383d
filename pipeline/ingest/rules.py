"""Which paths ingest accepts and what their bytes are (CONTRACT §4.1 accepted/ignored names, §4.2 sniffing, §6.5).

Pure functions: no database, no settings, no file system except reading a file's first bytes in ``sniff_file``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePath

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov"})
IGNORED_SUFFIXES = (".tmp", ".part", ".filepart", ".crdownload", "~")
SNIFF_BYTES = 16
UPLOAD_NAME_MAX_LENGTH = 100

_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")

# The magic bytes an extension's family must start with (§6.5).
_FAMILY_OF_EXTENSION = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".png": "png",
    ".mp4": "iso_bmff",
    ".mov": "iso_bmff",
    ".mkv": "matroska",
    ".avi": "avi",
}


def media_type_for(path: str | os.PathLike) -> str | None:
    """``image`` / ``video`` by extension (case-insensitive), None for any other file."""
    suffix = PurePath(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def is_ignored_name(name: str) -> bool:
    """Hidden names and the partial-download names of §4.1 (``.tmp``, ``.part``, ``.filepart``, ``.crdownload``,
    ``~``)."""
    return name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES)


def relative_parts(path: str | os.PathLike, root: str | os.PathLike) -> tuple[str, ...] | None:
    """The components of ``path`` below ``root`` (both made absolute and normalised), None when outside it."""
    absolute = Path(os.path.normpath(os.path.abspath(path)))
    base = Path(os.path.normpath(os.path.abspath(root)))
    if not absolute.is_relative_to(base):
        # The same tree reached through a symlinked root (or the other way round).
        absolute = Path(os.path.realpath(absolute.parent)) / absolute.name
        base = Path(os.path.realpath(base))
        if not absolute.is_relative_to(base):
            return None
    return absolute.relative_to(base).parts


def camera_folder_of(path: str | os.PathLike, root: str | os.PathLike) -> str | None:
    """The camera folder: the first component below ``root``. None for files directly in the root or outside it."""
    parts = relative_parts(path, root)
    if not parts or len(parts) < 2:
        return None
    return parts[0]


def is_accepted_path(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True for an image or video inside a camera folder of ``root`` whose path has no hidden segment and whose name
    is not a partial download (§4.1). Purely by name: directories are excluded by the caller."""
    parts = relative_parts(path, root)
    if not parts or len(parts) < 2:
        return False
    if any(part.startswith(".") for part in parts):
        return False
    return not is_ignored_name(parts[-1]) and media_type_for(parts[-1]) is not None


def sniff_mime_type(head: bytes) -> str:
    """The MIME type of a file from its first bytes (§4.2), ``''`` when unrecognised."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/x-matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return ""


def sniff_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return sniff_mime_type(handle.read(SNIFF_BYTES))


def magic_matches_extension(head: bytes, extension: str) -> bool:
    """Whether ``head`` starts with the magic bytes of ``extension``'s family (§6.5: JPEG ``FF D8 FF``; PNG
    signature; MP4/MOV ``ftyp`` at offset 4; MKV ``1A 45 DF A3``; AVI ``RIFF``…``AVI ``)."""
    family = _FAMILY_OF_EXTENSION.get(extension.lower())
    if family == "jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if family == "png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if family == "iso_bmff":
        return head[4:8] == b"ftyp"
    if family == "matroska":
        return head.startswith(b"\x1a\x45\xdf\xa3")
    if family == "avi":
        return head.startswith(b"RIFF") and head[8:12] == b"AVI "
    return False


def sanitise_upload_name(name: str) -> str:
    """The client's file name reduced to ``[A-Za-z0-9._-]`` (others become ``_``), at most 100 characters, keeping
    the extension when it has to be shortened (§6.5)."""
    base = _UNSAFE_NAME_CHARACTERS.sub("_", PurePath(name.replace("\\", "/")).name) or "upload"
    if len(base) <= UPLOAD_NAME_MAX_LENGTH:
        return base
    suffix = PurePath(base).suffix[:UPLOAD_NAME_MAX_LENGTH]
    return base[: UPLOAD_NAME_MAX_LENGTH - len(suffix)] + suffix
