"""The rules analyzer rules-v1 (CONTRACT §4.6.3), factor by factor; time is set by explicit datetimes."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.analyzers.rules import RULES_MODEL, rules_verdict

from .contexts import DAY, DRIVEWAY, NIGHT, PORCH, baseline, ctx, det, entity


def score(*detections, **kwargs) -> int:
    return rules_verdict(ctx(*detections, **kwargs)).risk_score


def test_model_name_is_rules_v1():
    assert RULES_MODEL == "rules-v1"


@pytest.mark.parametrize(
    ("object_type", "points"),
    [
        ("knife", 60),
        ("scissors", 60),
        ("baseball bat", 60),
        ("person", 25),
        ("car", 15),
        ("truck", 15),
        ("bus", 15),
        ("motorcycle", 15),
        ("bicycle", 15),
        ("umbrella", 10),
        ("dog", 5),
        ("cat", 5),
        ("bird", 5),
        ("horse", 5),
        ("sheep", 5),
        ("cow", 5),
        ("bear", 5),
        ("motion", 5),
    ],
)
def test_base_is_the_class_weight(object_type, points):
    assert score(det(object_type)) == points


def test_base_is_the_highest_weight_present_not_a_sum():
    assert score(det("dog"), det("car"), det("person"), det("person", offset=3)) == 25
    assert score(det("person"), det("knife", offset=1)) == 60


def test_class_names_are_matched_case_insensitively():
    assert score(det("Person")) == 25


@pytest.mark.parametrize(
    ("moment", "night"),
    [
        (dt.datetime(2024, 5, 1, 21, 59, 59, tzinfo=dt.UTC), False),
        (dt.datetime(2024, 5, 1, 22, 0, tzinfo=dt.UTC), True),
        (dt.datetime(2024, 5, 2, 0, 0, tzinfo=dt.UTC), True),
        (dt.datetime(2024, 5, 2, 5, 59, 59, tzinfo=dt.UTC), True),
        (dt.datetime(2024, 5, 2, 6, 0, tzinfo=dt.UTC), False),
    ],
)
def test_night_is_22_00_to_05_59(moment, night):
    assert score(det("person", at=moment)) == (50 if night else 25)
    assert score(det("car", at=moment)) == (20 if night else 15)


def test_night_uses_the_local_time_zone():
    # 14:05 UTC is 23:05 in Tokyo and 16:05 in Paris (CEST)
    assert score(det("person", at=DAY), timezone="Asia/Tokyo") == 50
    assert score(det("person", at=DAY), timezone="Europe/Paris") == 25
    assert score(det("person", at=NIGHT), timezone="America/New_York") == 25  # 19:30 there


def test_night_is_judged_at_the_first_detection_of_the_batch():
    evening = dt.datetime(2024, 5, 1, 21, 59, 30, tzinfo=dt.UTC)
    assert score(det("person", at=evening), det("car", at=evening, offset=60)) == 25
    late = dt.datetime(2024, 5, 1, 22, 0, 0, tzinfo=dt.UTC)
    assert score(det("car", at=late), det("person", at=late, offset=60)) == 50


def test_person_in_an_enabled_entry_point_zone_adds_15():
    assert score(det("person", zones=(PORCH,))) == 40
    assert score(det("person", zones=(DRIVEWAY,))) == 25
    assert score(det("car", zones=(PORCH,))) == 15


def test_entry_point_zone_must_be_among_the_cameras_enabled_zones():
    assert score(det("person", zones=(PORCH,)), zones=(DRIVEWAY,)) == 25


def test_anomaly_at_or_above_the_threshold_adds_10(settings):
    settings.BASELINE_ANOMALY_THRESHOLD = 0.8
    assert score(det("person"), baseline_context=baseline(0.8)) == 35
    assert score(det("person"), baseline_context=baseline(0.79)) == 25
    assert score(det("person"), baseline_context=baseline(established=False)) == 25
    assert score(det("person"), baseline_context=None) == 25
    settings.BASELINE_ANOMALY_THRESHOLD = 0.5
    assert score(det("person"), baseline_context=baseline(0.6)) == 35


def test_person_matching_an_untrusted_entity_adds_20():
    assert score(det("person", entity=entity("untrusted")), det("person", offset=2)) == 45
    assert score(det("car", entity=entity("untrusted"))) == 15


def test_every_person_matching_a_trusted_entity_subtracts_25():
    assert score(det("person", entity=entity("trusted")), det("person", offset=1, entity=entity("trusted"))) == 0
    assert score(det("person", entity=entity("trusted")), det("person", offset=1)) == 25
    assert score(det("person", entity=entity("trusted")), det("person", offset=1, entity=entity("unknown"))) == 25
    assert score(det("car")) == 15  # no person: nothing to trust


def test_highest_confidence_below_0_6_subtracts_10():
    assert score(det("person", 0.59), det("car", 0.55, offset=1)) == 15
    assert score(det("person", 0.6)) == 25
    assert score(det("person", 0.59), det("car", 0.95, offset=1)) == 25


def test_score_is_clamped_to_0_100(settings):
    settings.BASELINE_ANOMALY_THRESHOLD = 0.8
    worst = det("knife", at=NIGHT), det("person", at=NIGHT, zones=(PORCH,), entity=entity("untrusted"))
    verdict = rules_verdict(ctx(*worst, baseline_context=baseline(0.95)))
    assert verdict.risk_score == 100
    assert verdict.risk_level == "critical"
    assert score(det("dog", 0.4)) == 0


def test_summary_lists_counts_by_count_then_name_with_the_local_time():
    detections = [det("car"), det("person", offset=1), det("person", offset=2), det("bicycle", offset=3)]
    verdict = rules_verdict(ctx(*detections, timezone="Europe/Paris"))
    assert verdict.summary == "2 person, 1 bicycle, 1 car detected on Front Door at 16:05."


def test_reasoning_lists_each_applied_factor_with_its_points(settings):
    settings.BASELINE_ANOMALY_THRESHOLD = 0.8
    verdict = rules_verdict(
        ctx(det("person", 0.5, at=NIGHT, zones=(PORCH,), entity=entity("untrusted")), baseline_context=baseline(0.9))
    )
    assert verdict.risk_score == 25 + 25 + 15 + 10 + 20 - 10
    for text in (
        "(person) +25",
        "with a person +25",
        "entry-point zone +15",
        "anomaly score 0.90) +10",
        "untrusted entity +20",
        "confidence (highest < 0.60) -10",
        "Score 85 (critical)",
    ):
        assert text in verdict.reasoning
    assert "trusted entity -25" not in verdict.reasoning


@pytest.mark.parametrize(
    ("detections", "level", "action"),
    [
        ((det("car"),), "low", "No action needed"),
        ((det("person", at=NIGHT),), "medium", "Review when convenient"),
        ((det("knife"),), "high", "Review promptly"),
        ((det("knife", at=NIGHT), det("person", at=NIGHT, zones=(PORCH,))), "critical", "Check the camera now"),
    ],
)
def test_recommended_action_follows_the_level(detections, level, action):
    verdict = rules_verdict(ctx(*detections))
    assert (verdict.risk_level, verdict.recommended_action) == (level, action)


def test_level_follows_the_configured_bands(settings):
    settings.SEVERITY_LOW_MAX = 10
    verdict = rules_verdict(ctx(det("car")))
    assert (verdict.risk_score, verdict.risk_level, verdict.recommended_action) == (
        15,
        "medium",
        "Review when convenient",
    )
