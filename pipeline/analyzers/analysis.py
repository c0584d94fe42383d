"""Running the analyzer for one batch (CONTRACT §4.6 steps 3–4, §4.8 for LLM calls).

The rules verdict is always computed. With an LLM backend the prompt is sent under the ``llm`` circuit breaker,
with up to ``LLM_MAX_RETRIES`` retries and the §4.8 backoff; a completion that does not parse is a failed attempt
but not a breaker failure. After the last failure, a permanent (4xx) error or an open breaker, the rules verdict
is used with ``analysis_status = fallback``. LLM trouble never raises out of ``analyze``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from events.risk import risk_level_for
from hsi.metrics import llm_request_seconds
from hsi.resilience import CircuitOpenError, breaker, retry_delay
from pipeline.analyzers.base import AnalysisOutcome, BatchContext, Completion, LLMBackend, LLMError, Verdict
from pipeline.analyzers.llamacpp import LlamaCppBackend
from pipeline.analyzers.openai import OpenAIBackend
from pipeline.analyzers.parsing import FAILED, ParsedOutput, parse_output
from pipeline.analyzers.prompt import Prompt, build_prompt
from pipeline.analyzers.rules import RULES_MODEL, recommended_action_for, rules_verdict

logger = logging.getLogger("hsi.pipeline.analyzers")

RAW_RESPONSE_MAX = 65536
FALLBACK_REASON_MAX = 200
BACKENDS: dict[str, type[LLMBackend]] = {"llamacpp": LlamaCppBackend, "openai": OpenAIBackend}


def resolve_backend_name() -> str:
    """``llamacpp`` | ``openai`` | ``rules``; ``auto`` is llamacpp when ``LLM_URL`` is set, else rules."""
    configured = settings.LLM_BACKEND
    if configured == "auto":
        return "llamacpp" if settings.LLM_URL else "rules"
    return configured


def get_llm_backend() -> LLMBackend | None:
    """A fresh client for the configured LLM backend; None for the rules backend or without ``LLM_URL``."""
    backend_class = BACKENDS.get(resolve_backend_name())
    if backend_class is None or not settings.LLM_URL:
        return None
    return backend_class.from_settings()


@dataclass
class _Attempts:
    """What the retry loop learned: the last completion and its parse, the last failure, the attempt count."""

    count: int = 0
    completion: Completion | None = None
    parsed: ParsedOutput | None = None
    failure: str | None = None


def analyze(ctx: BatchContext, *, sleep: Callable[[float], None] = time.sleep) -> AnalysisOutcome:
    started = time.monotonic()
    rules = rules_verdict(ctx)
    name = resolve_backend_name()
    if name == "rules":
        return AnalysisOutcome(
            verdict=rules,
            analysis_status="rules",
            backend="rules",
            model=RULES_MODEL,
            rules_risk_score=rules.risk_score,
            parse_status="not_applicable",
            latency_ms=_elapsed_ms(started),
        )
    prompt = build_prompt(ctx)
    backend = get_llm_backend()
    if backend is None:
        attempts = _Attempts(failure="configuration: LLM_URL is not set")
        return _outcome(name, prompt, prompt.chatml, rules, attempts, started)
    try:
        attempts = _call_with_retries(backend, prompt, sleep)
        return _outcome(name, prompt, backend.prompt_text(prompt.system, prompt.user), rules, attempts, started)
    finally:
        backend.close()


def _call_with_retries(backend: LLMBackend, prompt: Prompt, sleep: Callable[[float], None]) -> _Attempts:
    attempts = _Attempts()
    llm_breaker = breaker("llm")
    for attempt in range(1, settings.LLM_MAX_RETRIES + 2):
        if attempt > 1:
            sleep(retry_delay(attempt - 1))
        attempts.count = attempt
        began = time.monotonic()
        try:
            completion = llm_breaker.call(lambda: backend.complete(prompt.system, prompt.user))
        except CircuitOpenError as error:
            attempts.failure = f"{error.error_type}: {error}"
            return attempts
        except LLMError as error:
            _observe(backend.name, error.error_type, began)
            attempts.failure = f"{error.error_type}: {error}"
            if not error.retryable:
                return attempts
            continue
        except Exception as error:  # a bug in a backend must not fail the analysis: fall back, loudly
            logger.exception("LLM backend %s raised unexpectedly", backend.name)
            _observe(backend.name, "unexpected_error", began)
            attempts.failure = f"{type(error).__name__}: {error}"
            return attempts
        attempts.completion = completion
        attempts.parsed = parse_output(completion.text)
        if attempts.parsed.status == FAILED:
            _observe(backend.name, "parse_failed", began)
            attempts.failure = f"parse_failed: {attempts.parsed.error}"
            continue
        _observe(backend.name, "success", began)
        attempts.failure = None
        return attempts
    return attempts


def _observe(backend: str, outcome: str, began: float) -> None:
    llm_request_seconds.labels(backend=backend, outcome=outcome).observe(time.monotonic() - began)


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _outcome(
    backend: str, prompt: Prompt, prompt_text: str, rules: Verdict, attempts: _Attempts, started: float
) -> AnalysisOutcome:
    completion, parsed = attempts.completion, attempts.parsed
    succeeded = attempts.failure is None and parsed is not None
    outcome = AnalysisOutcome(
        verdict=_llm_verdict(parsed, rules) if succeeded else rules,
        analysis_status="llm" if succeeded else "fallback",
        backend=backend,
        model=(completion.model if completion else "") or settings.LLM_MODEL or backend,
        rules_risk_score=rules.risk_score,
        prompt=prompt_text,
        raw_response=(completion.text if completion else "")[:RAW_RESPONSE_MAX],
        parse_status=parsed.status if parsed else "not_applicable",
        parse_error=parsed.error if parsed else "",
        llm_risk_score=parsed.raw_score if parsed else None,
        llm_risk_level=parsed.raw_level if parsed else None,
        attempts=attempts.count,
        prompt_tokens=completion.prompt_tokens if completion else None,
        completion_tokens=completion.completion_tokens if completion else None,
        fallback_reason=None if succeeded else (attempts.failure or "unknown")[:FALLBACK_REASON_MAX],
        context_flags=dict(prompt.context_flags),
    )
    if not succeeded:
        logger.warning("LLM analysis fell back to the rules verdict: %s", outcome.fallback_reason)
    outcome.latency_ms = _elapsed_ms(started)
    return outcome


def _llm_verdict(parsed: ParsedOutput, rules: Verdict) -> Verdict:
    score = parsed.risk_score
    level = risk_level_for(score)
    return Verdict(
        risk_score=score,
        risk_level=level,
        summary=parsed.summary or rules.summary,
        reasoning=parsed.reasoning,
        recommended_action=parsed.recommended_action or recommended_action_for(level),
    )
