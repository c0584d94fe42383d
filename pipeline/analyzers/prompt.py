"""The LLM prompt of one batch (CONTRACT §4.6.4): a system turn, a user turn of fixed sections, and ChatML.

User-turn sections, in order: CAMERA, TIME, DETECTIONS, BASELINE, HISTORY, FEEDBACK, TASK. When the prompt is
longer than ``LLM_MAX_PROMPT_CHARS`` the detection lines are cut to the 20 highest-confidence ones (plus a
``… and N more`` line), then HISTORY and FEEDBACK are dropped. ``context_flags`` says what context was included.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from events.risk import risk_bands
from pipeline.analyzers.base import BatchContext, DetectionContext, EntityContext
from pipeline.analyzers.rules import class_counts, counts_text, is_night, local_time

MAX_DETECTION_LINES_WHEN_CUT = 20
RISK_LEVELS = ("low", "medium", "high", "critical")

SYSTEM_TEMPLATE = """You are a home security analyst. You review what a security camera detected during a short \
time window and judge how risky it is for the home owner.

Calibration:
- Most activity is benign. Expect roughly 80 % of batches to be low, 15 % medium, 4 % high and 1 % critical.
- The presence of a person alone is not a threat: residents, visitors, delivery and postal workers are normal.
- Weather, shadows, vegetation, lighting changes and timestamps are not risk factors.
- Forced entry, tampering with cameras, locks or windows, weapons and property crime score 60 or more.

Score bands (risk_score -> risk_level):
{bands}

Answer with exactly one JSON object and nothing else:
{{"risk_score": <0-100 integer>, "risk_level": "low|medium|high|critical", "summary": "<1-2 sentences>", \
"reasoning": "<why>", "recommended_action": "<short>"}}"""

TASK_TEXT = "TASK\nAssess the risk of this batch. Answer with the JSON object only."


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    chatml: str
    context_flags: dict[str, bool]

    @property
    def chars(self) -> int:
        return len(self.chatml)


def system_text() -> str:
    bands = "\n".join(f"- {low}-{high}: {level}" for level, (low, high) in risk_bands().items())
    return SYSTEM_TEMPLATE.format(bands=bands)


def chatml(system: str, user: str) -> str:
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


# --- sections -----------------------------------------------------------------------------------------------


def camera_section(ctx: BatchContext) -> str:
    zones = ", ".join(f"{zone.name} ({zone.zone_type})" for zone in ctx.zones) or "none"
    established = ctx.baseline is not None and ctx.baseline.established
    status = "no (baseline established)" if established else "yes (baseline not established)"
    return f"CAMERA\nName: {ctx.camera_name}\nId: {ctx.camera_id}\nZones: {zones}\nNew camera: {status}"


def time_section(ctx: BatchContext) -> str:
    start = local_time(ctx.started_at, ctx.timezone)
    end = local_time(ctx.ended_at, ctx.timezone)
    period = "night" if is_night(start) else "day"
    return (
        f"TIME\nStart: {start:%Y-%m-%d %H:%M}\nEnd: {end:%Y-%m-%d %H:%M}\nWeekday: {start:%A}\n"
        f"Period: {period} (local time, {ctx.timezone})"
    )


def entity_note(entity: EntityContext | None) -> str | None:
    if entity is None:
        return None
    label = entity.label or "unlabelled"
    if entity.trust_status == "trusted":
        return f"trusted: {label}"
    if entity.trust_status == "untrusted":
        return f"untrusted: {label}"
    if entity.is_new:
        return "new"
    return f"seen {entity.times_seen} times"


def _geometry(detection: DetectionContext) -> str:
    width, height = detection.image_width, detection.image_height
    if not width or not height:
        return f"box {detection.bbox_width}x{detection.bbox_height} px"
    centre_x = (detection.bbox_x + detection.bbox_width / 2) / width
    centre_y = (detection.bbox_y + detection.bbox_height / 2) / height
    return (
        f"centre ({centre_x:.2f}, {centre_y:.2f}) size {detection.bbox_width / width:.2f}x"
        f"{detection.bbox_height / height:.2f}"
    )


def detection_line(ctx: BatchContext, detection: DetectionContext, zone_names: dict[str, str]) -> str:
    offset = (detection.detected_at - ctx.started_at).total_seconds()
    parts = [f"+{offset:.1f}s", detection.object_type.lower(), f"{detection.confidence:.2f}", _geometry(detection)]
    zones = [zone_names[zone_id] for zone_id in detection.zone_ids if zone_id in zone_names]
    parts.append("zones: " + (", ".join(zones) if zones else "none"))
    note = entity_note(detection.entity)
    if note:
        parts.append(f"entity: {note}")
    return " | ".join(parts)


def detections_section(ctx: BatchContext, *, cut: bool = False) -> str:
    zone_names = {zone.id: zone.name for zone in ctx.zones}
    shown = list(ctx.detections)
    omitted: list[DetectionContext] = []
    if cut and len(shown) > MAX_DETECTION_LINES_WHEN_CUT:
        ranked = sorted(shown, key=lambda d: (-d.confidence, d.detected_at, d.id))
        kept = {id(d) for d in ranked[:MAX_DETECTION_LINES_WHEN_CUT]}
        omitted = [d for d in shown if id(d) not in kept]
        shown = [d for d in shown if id(d) in kept]
    lines = [f"DETECTIONS ({len(ctx.detections)}: {counts_text(ctx.detections) or 'none'})"]
    lines += [detection_line(ctx, d, zone_names) for d in shown]
    if omitted:
        lines.append(f"… and {len(omitted)} more: {counts_text(omitted)}")
    return "\n".join(lines)


def baseline_section(ctx: BatchContext) -> str:
    baseline = ctx.baseline
    if baseline is None or not baseline.established:
        return "BASELINE\nnot established"
    classes = [name for name, _ in class_counts(ctx.detections)]
    typical = ", ".join(f"{name} {baseline.class_frequencies.get(name, 0.0):.2f}/h" for name in classes) or "none"
    anomaly = "unknown" if baseline.anomaly_score is None else f"{baseline.anomaly_score:.2f}"
    return (
        f"BASELINE\nExpected detections this weekday-hour: {baseline.expected_count:.1f}\n"
        f"Detections in the last hour: {baseline.observed_last_hour}\n"
        f"Typical frequency at this hour: {typical}\n"
        f"Anomaly score: {anomaly} (0 = usual, 1 = never seen)"
    )


def history_section(ctx: BatchContext) -> str:
    counts = ", ".join(f"{level} {int(ctx.history.get(level, 0))}" for level in RISK_LEVELS)
    return f"HISTORY\nThis camera's events in the last 24 h by risk level: {counts}"


def feedback_section(ctx: BatchContext) -> str:
    normal = int(ctx.feedback.get("normal", 0))
    false_positive = int(ctx.feedback.get("false_positive", 0))
    return (
        f"FEEDBACK\nMatching past events the operator marked normal: {normal}; marked false positive: {false_positive}"
    )


# --- assembly -----------------------------------------------------------------------------------------------


def _assemble(ctx: BatchContext, system: str, *, cut: bool, with_history: bool) -> Prompt:
    sections = [camera_section(ctx), time_section(ctx), detections_section(ctx, cut=cut), baseline_section(ctx)]
    if with_history:
        sections += [history_section(ctx), feedback_section(ctx)]
    sections.append(TASK_TEXT)
    user = "\n\n".join(sections)
    flags = {
        "zones": bool(ctx.zones),
        "baseline": ctx.baseline is not None and ctx.baseline.established,
        "entities": any(d.entity is not None for d in ctx.detections),
        "feedback": with_history,
        "history": with_history,
    }
    return Prompt(system=system, user=user, chatml=chatml(system, user), context_flags=flags)


def build_prompt(ctx: BatchContext) -> Prompt:
    """The prompt of ``ctx``, shortened step by step while it exceeds ``LLM_MAX_PROMPT_CHARS``."""
    limit = settings.LLM_MAX_PROMPT_CHARS
    system = system_text()
    prompt = _assemble(ctx, system, cut=False, with_history=True)
    if prompt.chars <= limit:
        return prompt
    prompt = _assemble(ctx, system, cut=True, with_history=True)
    if prompt.chars <= limit:
        return prompt
    return _assemble(ctx, system, cut=True, with_history=False)
