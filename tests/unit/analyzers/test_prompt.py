"""The LLM prompt (CONTRACT §4.6.4): turns, sections and their order, lines, truncation and context flags."""

from __future__ import annotations

import datetime as dt
import re

from pipeline.analyzers.prompt import build_prompt

from .contexts import DAY, DRIVEWAY, NIGHT, PORCH, baseline, ctx, det, entity

SECTIONS = ["CAMERA", "TIME", "DETECTIONS", "BASELINE", "HISTORY", "FEEDBACK", "TASK"]


def section(user: str, name: str) -> str:
    """The text of one section (from its heading to the next blank line)."""
    for block in user.split("\n\n"):
        if block.split("\n", 1)[0].split(" ", 1)[0] == name:
            return block
    raise AssertionError(f"no {name} section in:\n{user}")


def headings(user: str) -> list[str]:
    return [block.split("\n", 1)[0].split(" ", 1)[0] for block in user.split("\n\n")]


def test_system_turn_has_role_calibration_bands_and_the_json_instruction(settings):
    settings.SEVERITY_LOW_MAX, settings.SEVERITY_MEDIUM_MAX, settings.SEVERITY_HIGH_MAX = 29, 59, 84
    system = build_prompt(ctx()).system
    assert "security analyst" in system
    for text in (
        "80 % ",
        "15 % medium",
        "4 % high",
        "1 % critical",
        "person alone is not a threat",
        "Weather, shadows, vegetation",
        "timestamps are not risk factors",
        "score 60 or more",
    ):
        assert text in system
    for band in ("0-29: low", "30-59: medium", "60-84: high", "85-100: critical"):
        assert band in system
    assert '{"risk_score": <0-100 integer>, "risk_level": "low|medium|high|critical", "summary":' in system
    assert "exactly one JSON object and nothing else" in system


def test_system_turn_follows_configured_bands(settings):
    settings.SEVERITY_LOW_MAX = 19
    assert "0-19: low" in build_prompt(ctx()).system
    assert "20-59: medium" in build_prompt(ctx()).system


def test_chatml_is_system_user_then_an_open_assistant_turn():
    prompt = build_prompt(ctx())
    assert prompt.chatml == (
        f"<|im_start|>system\n{prompt.system}<|im_end|>\n<|im_start|>user\n{prompt.user}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_user_turn_sections_are_in_contract_order():
    assert headings(build_prompt(ctx()).user) == SECTIONS


def test_camera_section_names_camera_zones_and_whether_it_is_new():
    text = section(build_prompt(ctx(baseline_context=None)).user, "CAMERA")
    assert "Front Door" in text and "front_door" in text
    assert "Porch (entry_point), Driveway (driveway)" in text
    assert "baseline not established" in text
    established = section(build_prompt(ctx(baseline_context=baseline())).user, "CAMERA")
    assert "not established" not in established
    assert "Zones: none" in section(build_prompt(ctx(zones=())).user, "CAMERA")


def test_time_section_is_local_with_weekday_and_day_or_night():
    batch = ctx(det(at=DAY), det(at=DAY, offset=75), timezone="Asia/Tokyo")
    text = section(build_prompt(batch).user, "TIME")
    assert "Start: 2024-05-01 23:05" in text
    assert "End: 2024-05-01 23:06" in text
    assert "Weekday: Wednesday" in text
    assert "night" in text
    assert "day" in section(build_prompt(ctx(det(at=DAY))).user, "TIME").split("Period: ")[1]


def test_detection_lines_carry_offset_class_confidence_geometry_zones_and_entity_note():
    batch = ctx(
        det("person", 0.914, zones=(PORCH,), entity=entity("unknown", times_seen=4), bbox=(600, 300, 80, 240)),
        det("car", 0.8, offset=12.5, zones=(DRIVEWAY, PORCH), entity=entity("unknown", is_new=True)),
        det("person", 0.7, offset=20, entity=entity("trusted", label="Alice")),
        det("person", 0.66, offset=21, entity=entity("untrusted", label="Van man")),
        det("dog", 0.6, offset=30, size=(None, None)),
    )
    lines = section(build_prompt(batch).user, "DETECTIONS").split("\n")
    assert lines[0] == "DETECTIONS (5: 3 person, 1 car, 1 dog)"
    assert (
        lines[1] == "+0.0s | person | 0.91 | centre (0.50, 0.58) size 0.06x0.33 | zones: Porch | entity: seen 4 times"
    )
    assert lines[2].startswith("+12.5s | car | 0.80 |")
    assert lines[2].endswith("zones: Driveway, Porch | entity: new")
    assert lines[3].endswith("entity: trusted: Alice")
    assert lines[4].endswith("entity: untrusted: Van man")
    assert lines[5] == "+30.0s | dog | 0.60 | box 80x240 px | zones: none"


def test_baseline_section_with_expectations_or_not_established():
    batch = ctx(det("person"), det("car", offset=1), baseline_context=baseline(0.83))
    text = section(build_prompt(batch).user, "BASELINE")
    assert "Expected detections this weekday-hour: 2.5" in text
    assert "Detections in the last hour: 7" in text
    assert "car 0.00/h, person 0.40/h" in text
    assert "Anomaly score: 0.83" in text
    assert section(build_prompt(ctx()).user, "BASELINE") == "BASELINE\nnot established"
    unestablished = ctx(baseline_context=baseline(established=False))
    assert section(build_prompt(unestablished).user, "BASELINE") == "BASELINE\nnot established"


def test_history_and_feedback_sections():
    batch = ctx(history={"low": 3, "high": 1}, feedback={"normal": 2, "false_positive": 1})
    user = build_prompt(batch).user
    assert "low 3, medium 0, high 1, critical 0" in section(user, "HISTORY")
    assert "normal: 2; marked false positive: 1" in section(user, "FEEDBACK")
    assert section(user, "TASK").startswith("TASK\nAssess the risk of this batch")


def test_context_flags_say_what_context_the_prompt_carries():
    bare = build_prompt(ctx(det("car"), zones=()))
    assert bare.context_flags == {
        "zones": False,
        "baseline": False,
        "entities": False,
        "feedback": True,
        "history": True,
    }
    rich = build_prompt(ctx(det("person", entity=entity()), baseline_context=baseline()))
    assert rich.context_flags == {"zones": True, "baseline": True, "entities": True, "feedback": True, "history": True}


def _crowd(count: int):
    """``count`` detections with distinct confidences; the best 20 are the persons 0.99 … 0.80."""
    detections = []
    for index in range(count):
        kind = "person" if index < 20 else ("car" if index % 2 else "dog")
        confidence = 0.99 - index * 0.001 if index < 20 else 0.5 + (index % 10) * 0.01
        detections.append(det(kind, confidence, offset=count - index, zones=(PORCH,)))
    return detections


def test_long_prompt_keeps_the_20_best_lines_and_counts_the_rest(settings):
    detections = _crowd(120)
    full = build_prompt(ctx(*detections))
    settings.LLM_MAX_PROMPT_CHARS = full.chars - 1
    prompt = build_prompt(ctx(*detections))
    lines = section(prompt.user, "DETECTIONS").split("\n")
    assert lines[0].startswith("DETECTIONS (120: ")
    kept = lines[1:-1]
    assert len(kept) == 20
    assert all(" | person | " in line for line in kept)
    offsets = [float(re.match(r"\+([0-9.]+)s", line).group(1)) for line in kept]
    assert offsets == sorted(offsets)  # still in time order
    assert lines[-1] == "… and 100 more: 50 car, 50 dog"
    assert headings(prompt.user) == SECTIONS
    assert prompt.context_flags["history"] and prompt.context_flags["feedback"]
    assert prompt.chars <= settings.LLM_MAX_PROMPT_CHARS


def test_still_too_long_drops_history_and_feedback(settings):
    batch = ctx(*_crowd(120), history={"low": 1}, feedback={"normal": 1})
    settings.LLM_MAX_PROMPT_CHARS = 1
    prompt = build_prompt(batch)
    assert headings(prompt.user) == ["CAMERA", "TIME", "DETECTIONS", "BASELINE", "TASK"]
    assert prompt.context_flags["history"] is False and prompt.context_flags["feedback"] is False
    assert "… and 100 more" in prompt.user
    settings.LLM_MAX_PROMPT_CHARS = prompt.chars  # exactly fits without HISTORY/FEEDBACK: still dropped
    assert "HISTORY" not in build_prompt(batch).user
    settings.LLM_MAX_PROMPT_CHARS = prompt.chars + len(build_prompt(batch).user)  # room for both again
    assert headings(build_prompt(batch).user) == SECTIONS


def test_a_short_prompt_is_never_cut(settings):
    settings.LLM_MAX_PROMPT_CHARS = 12000
    prompt = build_prompt(ctx(*[det(offset=i) for i in range(25)]))
    assert "more:" not in prompt.user
    assert len(section(prompt.user, "DETECTIONS").split("\n")) == 26


def test_prompt_is_a_pure_function_of_the_context():
    batch = ctx(det(at=NIGHT), history={"low": 1})
    assert build_prompt(batch) == build_prompt(batch)
    assert isinstance(batch.started_at, dt.datetime)
