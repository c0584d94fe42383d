"""Camera identifiers and display names (CONTRACT §0.2, §4.1, §10).

``slugify`` turns a camera name (API create) or a folder name (auto-create) into a camera id;
``display_name_from_folder`` turns a folder name into the name of an auto-created camera.
"""

from __future__ import annotations

import re
import unicodedata

CAMERA_ID_MAX_LENGTH = 64
CAMERA_ID_PATTERN = re.compile(r"^[a-z0-9_]{1,64}$")

_SEPARATORS = re.compile(r"[\s.\-]+")
_OUTSIDE_ALPHABET = re.compile(r"[^a-z0-9_]")
_REPEATED_UNDERSCORES = re.compile(r"_{2,}")
_FOLDER_WORD_SEPARATORS = re.compile(r"[\s_\-]+")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def slugify(text: str) -> str:
    """The slug rule of §0.2: ``Front Door`` → ``front_door``, ``Café Côté`` → ``cafe_cote``; may return ``""``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _SEPARATORS.sub("_", ascii_text.lower().strip())
    slug = _OUTSIDE_ALPHABET.sub("", slug)
    slug = _REPEATED_UNDERSCORES.sub("_", slug).strip("_")
    return slug[:CAMERA_ID_MAX_LENGTH].strip("_")


def is_camera_id(value: object) -> bool:
    return isinstance(value, str) and CAMERA_ID_PATTERN.fullmatch(value) is not None


def has_control_characters(text: str) -> bool:
    """U+0000–U+001F and U+007F (CONTRACT §2.2)."""
    return _CONTROL_CHARACTERS.search(text) is not None


def display_name_from_folder(folder_name: str) -> str:
    """``front_porch`` → ``Front Porch``; ``acc_3f2a`` → ``Acc 3f2a`` (first letter of each word upper-cased).

    Control characters are dropped, so the name always satisfies the API's name rule.
    """
    words = _FOLDER_WORD_SEPARATORS.split(_CONTROL_CHARACTERS.sub("", folder_name))
    return " ".join(word[:1].upper() + word[1:] for word in words if word)
