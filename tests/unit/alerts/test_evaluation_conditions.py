"""Rule conditions of CONTRACT §5.2 over plain data (``alerts.evaluation``): each condition on its own, the
one-detection-satisfies-all rule, zones, matched-condition strings and the metadata object type."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from alerts.evaluation import (
    DetectionFacts,
    EventFacts,
    ZoneFacts,
    evaluate_event_rule,
    evaluate_offline_rule,
    evaluation_order,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
ZONE_A = "11111111-1111-1111-1111-111111111111"
ZONE_B = "22222222-2222-2222-2222-222222222222"
LEFT_HALF = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
RIGHT_HALF = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]


def rule(**fields):
    values = {
        "id": "00000000-0000-0000-0000-000000000001",
        "name": "Rule",
        "severity": "high",
        "risk_threshold": None,
        "object_types": None,
        "camera_ids": None,
        "zone_ids": None,
        "min_confidence": None,
        "schedule": None,
    }
    values.update(fields)
    return SimpleNamespace(**values)


def detection(n=1, *, object_type="person", confidence=0.9, seconds=0, x=100, y=100, w=50, h=100, size=(1000, 1000)):
    return DetectionFacts(
        id=n,
        object_type=object_type,
        confidence=confidence,
        detected_at=T0 + dt.timedelta(seconds=seconds),
        bbox_x=x,
        bbox_y=y,
        bbox_width=w,
        bbox_height=h,
        image_width=size[0] if size else None,
        image_height=size[1] if size else None,
    )


def event(*detections, risk_score=60, camera_id="front_door", zones=()):
    return EventFacts(
        id=1, camera_id=camera_id, risk_score=risk_score, started_at=T0, detections=detections, zones=zones
    )


# --- risk threshold ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("score", "matches"), [(69, False), (70, True), (100, True), (None, False)])
def test_risk_threshold_holds_at_or_above_the_threshold(score, matches):
    result = evaluate_event_rule(rule(risk_threshold=70), event(risk_score=score))

    assert result.matches is matches
    if matches:
        assert result.matched_conditions == ["risk_score >= 70"]


def test_a_threshold_of_zero_still_needs_a_score():
    assert evaluate_event_rule(rule(risk_threshold=0), event(risk_score=0)).matches
    assert not evaluate_event_rule(rule(risk_threshold=0), event(risk_score=None)).matches


# --- cameras ----------------------------------------------------------------------------------------------------


def test_camera_ids_hold_for_a_listed_camera_only():
    listed = rule(camera_ids=["front_door", "garage"])

    assert evaluate_event_rule(listed, event(camera_id="garage")).matched_conditions == [
        "camera_id in [front_door, garage]"
    ]
    assert not evaluate_event_rule(listed, event(camera_id="back_yard")).matches


def test_empty_lists_are_no_condition():
    result = evaluate_event_rule(rule(camera_ids=[], object_types=[], zone_ids=[]), event())

    assert result.matches
    assert result.matched_conditions == ["no_conditions"]
    assert result.object_type is None


def test_a_rule_without_conditions_always_matches_even_an_event_without_detections():
    result = evaluate_event_rule(rule(), event(risk_score=None))

    assert (result.matches, result.matched_conditions, result.object_type) == (True, ["no_conditions"], None)


# --- detection conditions ---------------------------------------------------------------------------------------


def test_object_types_compare_case_insensitively():
    result = evaluate_event_rule(rule(object_types=["person"]), event(detection(object_type="Person")))

    assert result.matches
    assert result.matched_conditions == ["object_type in [person]"]
    assert result.object_type == "person"


def test_object_types_fail_when_no_detection_has_the_class():
    assert not evaluate_event_rule(rule(object_types=["car"]), event(detection(object_type="person"))).matches


def test_an_event_without_detections_fails_detection_conditions():
    assert not evaluate_event_rule(rule(object_types=["person"]), event()).matches
    assert not evaluate_event_rule(rule(min_confidence=0.1), event()).matches


@pytest.mark.parametrize(("confidence", "matches"), [(0.79, False), (0.8, True), (0.95, True)])
def test_min_confidence_holds_at_or_above(confidence, matches):
    result = evaluate_event_rule(rule(min_confidence=0.8), event(detection(confidence=confidence)))

    assert result.matches is matches
    if matches:
        assert result.matched_conditions == ["confidence >= 0.8"]


def test_numbers_use_the_shortest_repr():
    result = evaluate_event_rule(
        rule(min_confidence=0.9, risk_threshold=70), event(detection(confidence=0.95), risk_score=75)
    )

    assert result.matched_conditions == ["risk_score >= 70", "confidence >= 0.9"]


def test_one_detection_must_satisfy_every_detection_condition_together():
    # a confident car and a doubtful person: neither is a confident person
    given = event(detection(1, object_type="car", confidence=0.95), detection(2, object_type="person", confidence=0.4))

    assert not evaluate_event_rule(rule(object_types=["person"], min_confidence=0.8), given).matches


def test_the_object_type_is_the_class_of_the_earliest_matching_detection():
    given = event(
        detection(3, object_type="car", confidence=0.9, seconds=20),
        detection(2, object_type="dog", confidence=0.5, seconds=0),
        detection(1, object_type="person", confidence=0.9, seconds=10),
    )

    result = evaluate_event_rule(rule(min_confidence=0.8), given)

    assert result.object_type == "person"


def test_earliest_ties_break_on_the_detection_id():
    given = event(detection(7, object_type="car"), detection(5, object_type="person"))

    assert evaluate_event_rule(rule(min_confidence=0.5), given).object_type == "person"


# --- zones ------------------------------------------------------------------------------------------------------


def zones():
    return (ZoneFacts(ZONE_A, "Porch", LEFT_HALF), ZoneFacts(ZONE_B, "Drive", RIGHT_HALF))


def test_zone_condition_uses_the_normalised_bbox_centre():
    # centre (125 + 0, 150) / (1000, 1000) = (0.125, 0.15): left half only
    result = evaluate_event_rule(rule(zone_ids=[ZONE_A, ZONE_B]), event(detection(x=100, y=100), zones=zones()))

    assert result.matches
    assert result.matched_zone_ids == [ZONE_A]
    assert result.matched_conditions == [f"zone in [{ZONE_A}]"]
    assert result.object_type == "person"


def test_a_centre_outside_every_listed_zone_fails():
    given = event(detection(x=800, y=100), zones=zones())

    assert not evaluate_event_rule(rule(zone_ids=[ZONE_A]), given).matches


def test_a_centre_on_the_zone_edge_counts_as_inside():
    # centre x = (450 + 100/2) / 1000 = 0.5: on the shared edge of both halves
    result = evaluate_event_rule(rule(zone_ids=[ZONE_A, ZONE_B]), event(detection(x=450, w=100), zones=zones()))

    assert result.matched_zone_ids == [ZONE_A, ZONE_B]


def test_without_a_frame_size_a_detection_cannot_match_a_zone():
    assert not evaluate_event_rule(rule(zone_ids=[ZONE_A]), event(detection(size=None), zones=zones())).matches


def test_a_zone_not_among_the_event_cameras_enabled_zones_never_matches():
    # the evaluator is handed only enabled zones of the event's camera: a disabled/other-camera zone is absent
    given = event(detection(x=100), zones=(ZoneFacts(ZONE_B, "Drive", RIGHT_HALF),))

    assert not evaluate_event_rule(rule(zone_ids=[ZONE_A]), given).matches


def test_zone_ids_compare_case_insensitively():
    result = evaluate_event_rule(rule(zone_ids=[ZONE_A.upper()]), event(detection(), zones=zones()))

    assert result.matches


def test_zone_and_class_are_satisfied_by_one_detection():
    # the person is outside the porch, the car inside it
    given = event(detection(1, object_type="person", x=800), detection(2, object_type="car", x=100), zones=zones())

    assert not evaluate_event_rule(rule(zone_ids=[ZONE_A], object_types=["person"]), given).matches
    assert evaluate_event_rule(rule(zone_ids=[ZONE_A], object_types=["car"]), given).object_type == "car"


# --- every condition at once, order of strings ------------------------------------------------------------------


def test_all_conditions_together_report_every_string_in_order():
    schedule = {"days": [], "start_time": None, "end_time": None, "timezone": "UTC"}
    full = rule(
        risk_threshold=50,
        camera_ids=["front_door"],
        object_types=["person"],
        min_confidence=0.5,
        zone_ids=[ZONE_A],
        schedule=schedule,
    )

    result = evaluate_event_rule(full, event(detection(), zones=zones()))

    assert result.matched_conditions == [
        "risk_score >= 50",
        "camera_id in [front_door]",
        "object_type in [person]",
        "confidence >= 0.5",
        f"zone in [{ZONE_A}]",
        "within_schedule",
    ]


def test_one_failing_condition_fails_the_rule():
    full = rule(risk_threshold=50, camera_ids=["garage"], object_types=["person"])

    assert not evaluate_event_rule(full, event(detection())).matches


# --- camera_offline rules ---------------------------------------------------------------------------------------


def test_offline_rule_checks_cameras_and_schedule_only():
    listed = rule(camera_ids=["garage"])

    assert evaluate_offline_rule(listed, "garage", T0).matched_conditions == ["camera_id in [garage]"]
    assert not evaluate_offline_rule(listed, "front_door", T0).matches
    assert evaluate_offline_rule(rule(), "front_door", T0).matched_conditions == ["no_conditions"]


def test_offline_rule_schedule_uses_the_transition_clock():
    night = rule(schedule={"days": [], "start_time": "22:00", "end_time": "06:00", "timezone": "UTC"})

    assert evaluate_offline_rule(night, "garage", T0.replace(hour=23)).matched_conditions == ["within_schedule"]
    assert not evaluate_offline_rule(night, "garage", T0).matches


# --- order ------------------------------------------------------------------------------------------------------


def test_rules_are_ordered_by_descending_severity_then_name_then_id():
    rules = [
        rule(id="b", name="Beta", severity="low"),
        rule(id="c", name="Alpha", severity="critical"),
        rule(id="a", name="Beta", severity="high"),
        rule(id="0", name="Beta", severity="high"),
    ]

    assert [r.id for r in sorted(rules, key=evaluation_order)] == ["c", "0", "a", "b"]
