"""Dedup keys (CONTRACT §5.4) and dedup key template validation (§5.1)."""

from __future__ import annotations

import pytest

from alerts.evaluation import dedup_key, dedup_template_error

RULE_ID = "0b7f6f34-3c55-4b8e-9a51-0d5f0e7f1c2a"


def key(template, *, camera_id="front_door", object_type="person", severity="high"):
    return dedup_key(template, camera_id=camera_id, rule_id=RULE_ID, object_type=object_type, severity=severity)


def test_the_default_template_is_camera_and_rule():
    assert key("{camera_id}:{rule_id}") == f"front_door:{RULE_ID}"


def test_every_variable_is_filled_in():
    assert key("{camera_id}.{rule_id}.{object_type}.{severity}") == f"front_door.{RULE_ID}.person.high"


def test_object_type_is_none_without_a_detection_class():
    assert key("{camera_id}:{object_type}", object_type=None) == "front_door:none"


def test_characters_outside_the_safe_set_become_underscores():
    assert key("{camera_id}:{object_type}", object_type="traffic light/ä") == "front_door:traffic_light__"


def test_literal_text_is_kept():
    assert key("cam-{camera_id}:x.y_z") == "cam-front_door:x.y_z"


def test_keys_are_truncated_to_255_characters():
    result = key("{camera_id}" + "x" * 250, camera_id="c" * 64)

    assert len(result) == 255
    assert result.startswith("c" * 64)


@pytest.mark.parametrize(
    "template",
    ["{camera_id}:{rule_id}", "{object_type}", "fixed", "a.b-c_d:{severity}", "x" * 255],
)
def test_valid_templates(template):
    assert dedup_template_error(template) is None


@pytest.mark.parametrize(
    "template",
    ["", "x" * 256, "{camera}", "{camera_id} {rule_id}", "{camera_id}/{rule_id}", "{camera_id", "camera_id}", "{}"],
)
def test_invalid_templates(template):
    assert dedup_template_error(template) is not None
