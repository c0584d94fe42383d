"""The camera id slug rule and auto-created camera names (CONTRACT §0.2, §4.1, §10)."""

import pytest

from cameras.slug import display_name_from_folder, has_control_characters, is_camera_id, slugify


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Front Door", "front_door"),
        ("back-yard", "back_yard"),
        ("Garage Cam #2", "garage_cam_2"),
        ("Café Côté", "cafe_cote"),
    ],
)
def test_contract_examples(text, expected):
    assert slugify(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Porch  ", "porch"),
        ("a - b", "a_b"),
        ("a.b.c", "a_b_c"),
        ("a\t\nb", "a_b"),
        ("a__b", "a_b"),
        ("_a_", "a"),
        ("--a--", "a"),
        ("UPPER lower", "upper_lower"),
        ("ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
        ("Straße 1", "strae_1"),
        ("前门 door", "door"),
        ("cam(1)/[2]", "cam12"),
        ("acc_3f2a", "acc_3f2a"),
    ],
)
def test_separators_case_and_unicode(text, expected):
    assert slugify(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "!!!", "前门", "___", "-.-", "#"])
def test_text_without_letters_or_digits_gives_an_empty_slug(text):
    assert slugify(text) == ""


def test_slug_is_truncated_to_64_characters():
    assert slugify("a" * 100) == "a" * 64


def test_truncation_does_not_leave_a_trailing_underscore():
    # the 64th character is the separator between the two words
    assert slugify("a" * 63 + " bbbb") == "a" * 63


def test_every_non_empty_slug_is_a_valid_camera_id():
    for text in ["Front Door", "Café Côté", "x" * 200, "a b " * 40]:
        assert is_camera_id(slugify(text))


@pytest.mark.parametrize("value", ["front_door", "a", "0_9", "x" * 64])
def test_valid_camera_ids(value):
    assert is_camera_id(value)


@pytest.mark.parametrize("value", ["", "Front", "a-b", "a b", "x" * 65, "café", None, 12])
def test_invalid_camera_ids(value):
    assert not is_camera_id(value)


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("front_porch", "Front Porch"),
        ("acc_3f2a", "Acc 3f2a"),
        ("back-yard", "Back Yard"),
        ("garageCam", "GarageCam"),
        ("driveway__west", "Driveway West"),
        ("cam1", "Cam1"),
    ],
)
def test_auto_created_name_upper_cases_the_first_letter_of_each_word_only(folder, expected):
    assert display_name_from_folder(folder) == expected


def test_auto_created_name_drops_control_characters():
    assert display_name_from_folder("front\x07porch") == "Frontporch"


@pytest.mark.parametrize("text", ["a\x00", "\x1fa", "a\x7fb", "line\nbreak", "tab\there"])
def test_control_characters_are_detected(text):
    assert has_control_characters(text)


def test_printable_text_has_no_control_characters():
    assert not has_control_characters("Front Door — Café #2")
