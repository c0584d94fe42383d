"""The analyzer interface (CONTRACT §4.6): what a batch looks like to an analyzer, and what comes back.

``BatchContext`` is built from the database by ``pipeline.context.batch_context(batch)`` and is plain data, so
the rules analyzer, the prompt builder and the output parser are pure functions of it. ``LLMBackend`` is one
small base class with one module per kind (``llamacpp``, ``openai``); ``pipeline.analyzers.analyze(context)``
runs the rules verdict, the LLM with retries under the ``llm`` breaker, and the fallback.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from hsi.resilience import PipelineError


class LLMError(PipelineError):
    pass


@dataclass(frozen=True)
class ZoneContext:
    id: str
    name: str
    zone_type: str


@dataclass(frozen=True)
class EntityContext:
    id: str
    entity_type: str
    trust_status: str  # trusted | untrusted | unknown
    label: str
    times_seen: int  # detection_count of the entity, this detection included
    is_new: bool  # created by this detection


@dataclass(frozen=True)
class DetectionContext:
    id: int
    object_type: str
    confidence: float
    detected_at: dt.datetime  # aware, UTC
    bbox_x: int
    bbox_y: int
    bbox_width: int
    bbox_height: int
    image_width: int | None
    image_height: int | None
    zone_ids: tuple[str, ...] = ()
    entity: EntityContext | None = None


@dataclass(frozen=True)
class BaselineContext:
    established: bool
    coverage_days: float
    expected_count: float  # ActivityBaseline avg_count for the batch's weekday-hour
    observed_last_hour: int  # camera detections in the hour before the batch ends
    class_frequencies: dict[str, float]  # present class -> ClassBaseline frequency at this hour (0 when unseen)
    anomaly_score: float | None  # null until established


@dataclass(frozen=True)
class BatchContext:
    camera_id: str
    camera_name: str
    zones: tuple[ZoneContext, ...]  # enabled zones of the camera
    detections: tuple[DetectionContext, ...]  # ordered by detected_at, id
    started_at: dt.datetime  # aware, UTC: min detected_at
    ended_at: dt.datetime  # aware, UTC: max detected_at
    timezone: str  # TIME_ZONE: local times are computed in it
    baseline: BaselineContext | None  # None: no baseline rows at all (camera new)
    history: dict[str, int] = field(default_factory=dict)  # this camera's events in the last 24 h by risk level
    # matching active operator feedback: {"normal": n, "false_positive": n}
    feedback: dict[str, int] = field(default_factory=dict)
    batch_id: str | None = None
    is_fast_path: bool = False

    @property
    def anomaly_score(self) -> float | None:
        return self.baseline.anomaly_score if self.baseline else None


@dataclass(frozen=True)
class Verdict:
    risk_score: int  # 0-100, clamped
    risk_level: str  # derived from the score (§4.7)
    summary: str
    reasoning: str
    recommended_action: str


@dataclass
class AnalysisOutcome:
    """The verdict used for the event and everything EventAudit records about how it was reached."""

    verdict: Verdict
    analysis_status: str  # llm | rules | fallback
    backend: str  # llamacpp | openai | rules
    model: str
    rules_risk_score: int
    prompt: str = ""
    raw_response: str = ""
    parse_status: str = "not_applicable"  # ok | repaired | failed | not_applicable
    parse_error: str = ""
    llm_risk_score: int | None = None
    llm_risk_level: str | None = None
    attempts: int = 0
    latency_ms: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    fallback_reason: str | None = None
    context_flags: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    text: str
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class LLMBackend(ABC):
    """One LLM server protocol. ``complete`` makes exactly one HTTP call; retries belong to the caller."""

    name: str = ""

    @abstractmethod
    def complete(self, system: str, user: str) -> Completion:
        """Send one system + user turn; raise ``LLMError`` (with ``retryable``) when the call fails."""

    @abstractmethod
    def health(self) -> bool:
        """Probe the server's health endpoint."""

    def prompt_text(self, system: str, user: str) -> str:
        """The prompt as this protocol sends it, for the audit (the two turns, unless a backend says otherwise)."""
        return f"{system}\n\n{user}"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the HTTP client."""
