"""``pipeline.analyzers.analyze`` against the real fake LLM server on loopback (CONTRACT §4.6.1–§4.6.2, §4.8).

Both protocols, the request bodies and headers sent, token counts and models recorded, retries with backoff,
permanent 4xx errors, timeouts, the ``llm`` circuit breaker, unparsable answers and the rules fallback.
"""

from __future__ import annotations

import json
import socket

import pytest
from prometheus_client import REGISTRY

from hsi.resilience import breaker
from pipeline.analyzers import analyze, get_llm_backend, resolve_backend_name
from pipeline.analyzers.llamacpp import LlamaCppBackend
from pipeline.analyzers.openai import OpenAIBackend
from pipeline.analyzers.prompt import build_prompt
from pipeline.analyzers.rules import rules_verdict
from tests.fakes.http_fake import Reply
from tests.fakes.llm_server import verdict_json
from tests.unit.analyzers.contexts import NIGHT, PORCH, baseline, ctx, det, entity

pytestmark = pytest.mark.django_db

BATCH = ctx(det("person", 0.92, zones=(PORCH,), entity=entity("unknown")), baseline_context=baseline(0.3))


class Sleeps(list):
    """A ``sleep`` that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def llm(settings, fake_llm):
    settings.LLM_BACKEND = "auto"
    settings.LLM_URL = fake_llm.url
    settings.LLM_MODEL = ""
    settings.LLM_API_KEY = None
    settings.LLM_MAX_RETRIES = 3
    settings.LLM_TIMEOUT_SECONDS = 10
    settings.RETRY_BASE_DELAY_SECONDS = 0
    settings.RETRY_JITTER = 0
    settings.CIRCUIT_FAILURE_THRESHOLD = 50
    return fake_llm


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _observations(backend: str, outcome: str) -> float:
    labels = {"backend": backend, "outcome": outcome}
    return REGISTRY.get_sample_value("hsi_llm_request_seconds_count", labels) or 0.0


# --- backend resolution -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "url", "name"),
    [
        ("auto", "http://127.0.0.1:1", "llamacpp"),
        ("auto", None, "rules"),
        ("auto", "", "rules"),
        ("llamacpp", None, "llamacpp"),
        ("openai", "http://127.0.0.1:1", "openai"),
        ("rules", "http://127.0.0.1:1", "rules"),
    ],
)
def test_backend_name_resolution(settings, configured, url, name):
    settings.LLM_BACKEND, settings.LLM_URL = configured, url
    assert resolve_backend_name() == name


def test_get_llm_backend_builds_the_configured_protocol(settings):
    settings.LLM_URL = "http://127.0.0.1:1"
    settings.LLM_BACKEND = "auto"
    assert isinstance(get_llm_backend(), LlamaCppBackend)
    settings.LLM_BACKEND = "openai"
    assert isinstance(get_llm_backend(), OpenAIBackend)
    settings.LLM_BACKEND = "rules"
    assert get_llm_backend() is None
    settings.LLM_BACKEND, settings.LLM_URL = "llamacpp", None
    assert get_llm_backend() is None


# --- rules backend ----------------------------------------------------------------------------------------------


def test_rules_backend_gives_the_rules_verdict_without_calling_anything(settings, fake_llm):
    settings.LLM_BACKEND, settings.LLM_URL = "rules", fake_llm.url
    outcome = analyze(BATCH)
    assert outcome.verdict == rules_verdict(BATCH)
    assert (outcome.analysis_status, outcome.backend, outcome.model) == ("rules", "rules", "rules-v1")
    assert (outcome.parse_status, outcome.prompt, outcome.attempts, outcome.fallback_reason) == (
        "not_applicable",
        "",
        0,
        None,
    )
    assert outcome.rules_risk_score == rules_verdict(BATCH).risk_score
    assert fake_llm.completion_calls == 0


def test_auto_without_llm_url_is_rules(settings):
    settings.LLM_BACKEND, settings.LLM_URL = "auto", None
    assert analyze(BATCH).analysis_status == "rules"


# --- llama.cpp --------------------------------------------------------------------------------------------------


def test_llamacpp_request_body_headers_and_recorded_outcome(settings, llm):
    settings.LLM_API_KEY = "s3cret-key"
    settings.LLM_TEMPERATURE, settings.LLM_TOP_P, settings.LLM_MAX_TOKENS = 0.2, 0.9, 777
    llm.reply_text = verdict_json(
        35, "medium", "Someone at the porch.", reasoning="Entry zone.", recommended_action="Look"
    )
    outcome = analyze(BATCH)

    [request] = llm.completion_requests
    assert (request.method, request.path) == ("POST", "/completion")
    prompt = build_prompt(BATCH)
    assert request.json() == {
        "prompt": prompt.chatml,
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 777,
        "n_predict": 777,
        "stop": ["<|im_end|>", "<|im_start|>"],
        "stream": False,
    }
    assert request.headers["Authorization"] == "Bearer s3cret-key"
    assert request.headers["Content-Type"] == "application/json"

    assert outcome.analysis_status == "llm"
    assert (outcome.verdict.risk_score, outcome.verdict.risk_level) == (35, "medium")
    assert outcome.verdict.summary == "Someone at the porch."
    assert outcome.verdict.reasoning == "Entry zone."
    assert outcome.verdict.recommended_action == "Look"
    assert (outcome.backend, outcome.model) == ("llamacpp", "fake-nemotron")
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (321, 54)
    assert (outcome.attempts, outcome.parse_status, outcome.parse_error, outcome.fallback_reason) == (1, "ok", "", None)
    assert (outcome.llm_risk_score, outcome.llm_risk_level) == (35, "medium")
    assert outcome.prompt == prompt.chatml
    assert outcome.raw_response == llm.reply_text
    assert outcome.rules_risk_score == rules_verdict(BATCH).risk_score
    assert outcome.context_flags == prompt.context_flags
    assert outcome.latency_ms >= 0


def test_no_api_key_sends_no_authorization_header(llm):
    analyze(BATCH)
    assert "Authorization" not in llm.completion_requests[0].headers


def test_base_url_trailing_slash_is_tolerated(settings, llm):
    settings.LLM_URL = llm.url + "/"
    assert analyze(BATCH).analysis_status == "llm"
    assert llm.completion_requests[0].path == "/completion"


def test_latency_is_the_total_analyzer_time(llm):
    llm.delay = 0.2
    assert analyze(BATCH).latency_ms >= 200


def test_model_falls_back_to_llm_model_then_backend_name(settings, llm):
    llm.model = ""
    settings.LLM_MODEL = "configured-model"
    assert analyze(BATCH).model == "configured-model"
    settings.LLM_MODEL = ""
    assert analyze(BATCH).model == "llamacpp"


# --- OpenAI-compatible ------------------------------------------------------------------------------------------


def test_openai_request_body_headers_and_recorded_outcome(settings, llm):
    settings.LLM_BACKEND = "openai"
    settings.LLM_MODEL = "nemotron-mini"
    settings.LLM_API_KEY = "sk-test"
    settings.LLM_TEMPERATURE, settings.LLM_TOP_P, settings.LLM_MAX_TOKENS = 0.3, 0.95, 1536
    llm.model = "nemotron-mini-4b-instruct"
    outcome = analyze(BATCH)

    [request] = llm.completion_requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    prompt = build_prompt(BATCH)
    assert request.json() == {
        "model": "nemotron-mini",
        "messages": [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
        "temperature": 0.3,
        "top_p": 0.95,
        "max_tokens": 1536,
        "stream": False,
    }
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert (outcome.analysis_status, outcome.backend) == ("llm", "openai")
    assert outcome.model == "nemotron-mini-4b-instruct"  # the model the server reports
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (321, 54)
    assert outcome.prompt == f"{prompt.system}\n\n{prompt.user}"
    assert outcome.verdict.risk_score == 20


def test_openai_url_given_with_v1_is_not_doubled(settings, llm):
    settings.LLM_BACKEND, settings.LLM_URL = "openai", llm.url + "/v1/"
    assert analyze(BATCH).analysis_status == "llm"
    assert llm.completion_requests[0].path == "/v1/chat/completions"


def test_openai_answer_without_message_content_is_retried_then_falls_back(settings, llm):
    settings.LLM_BACKEND, settings.LLM_MAX_RETRIES = "openai", 1
    llm.script("POST", "/v1/chat/completions", Reply(json={"choices": []}), Reply(json={"choices": [{"message": {}}]}))
    outcome = analyze(BATCH)
    assert (outcome.analysis_status, outcome.attempts) == ("fallback", 2)
    assert outcome.fallback_reason.startswith("malformed_response: ")


def test_openai_null_content_is_missing_text(settings, llm):
    settings.LLM_BACKEND, settings.LLM_MAX_RETRIES = "openai", 0
    llm.script("POST", "/v1/chat/completions", Reply(json={"choices": [{"message": {"content": None}}]}))
    assert analyze(BATCH).fallback_reason.startswith("malformed_response")


# --- verdict from the parsed answer -----------------------------------------------------------------------------


def test_level_comes_from_the_clamped_score_not_the_returned_level(llm):
    llm.reply_text = json.dumps({"risk_score": 150, "risk_level": "low", "summary": "Odd.", "reasoning": "r"})
    outcome = analyze(BATCH)
    assert (outcome.verdict.risk_score, outcome.verdict.risk_level) == (100, "critical")
    assert (outcome.llm_risk_score, outcome.llm_risk_level, outcome.parse_status) == (150, "low", "repaired")


def test_missing_summary_and_action_come_from_rules_and_the_level(llm):
    llm.reply_text = '{"risk_score": 65}'
    outcome = analyze(BATCH)
    assert outcome.analysis_status == "llm"
    assert outcome.verdict.summary == rules_verdict(BATCH).summary
    assert outcome.verdict.recommended_action == "Review promptly"
    assert outcome.verdict.reasoning == ""


def test_text_around_the_json_is_a_repaired_success(llm):
    llm.reply_text = f"<think>Porch, daytime.</think>Sure! Here it is:\n{verdict_json(15)}"
    outcome = analyze(BATCH)
    assert (outcome.analysis_status, outcome.parse_status, outcome.verdict.risk_score) == ("llm", "repaired", 15)


def test_raw_response_is_truncated_to_65536_chars(llm):
    llm.reply_text = verdict_json(10) + " " + "x" * 70000
    outcome = analyze(BATCH)
    assert outcome.analysis_status == "llm"
    assert len(outcome.raw_response) == 65536


# --- retries, permanent errors, timeouts ------------------------------------------------------------------------


def test_5xx_then_success_retries_with_backoff(settings, llm):
    settings.RETRY_BASE_DELAY_SECONDS, settings.RETRY_JITTER = 1.0, 0
    llm.fail("POST", "/completion", times=2, status=503)
    sleeps = Sleeps()
    outcome = analyze(BATCH, sleep=sleeps)
    assert (outcome.analysis_status, outcome.attempts) == ("llm", 3)
    assert sleeps == [1.0, 2.0]
    assert llm.completion_calls == 3


def test_5xx_every_time_falls_back_after_the_last_retry(settings, llm):
    settings.RETRY_BASE_DELAY_SECONDS, settings.RETRY_JITTER, settings.RETRY_MAX_DELAY_SECONDS = 1.0, 0, 3
    llm.fail("POST", "/completion", times=10, status=500)
    sleeps = Sleeps()
    outcome = analyze(BATCH, sleep=sleeps)
    assert (outcome.analysis_status, outcome.attempts) == ("fallback", 4)
    assert sleeps == [1.0, 2.0, 3.0]  # capped by RETRY_MAX_DELAY_SECONDS
    assert outcome.verdict == rules_verdict(BATCH)
    assert outcome.fallback_reason.startswith("http_5xx: LLM server answered HTTP 500")
    assert (outcome.parse_status, outcome.raw_response, outcome.llm_risk_score) == ("not_applicable", "", None)
    assert outcome.prompt == build_prompt(BATCH).chatml
    assert outcome.model == "llamacpp"
    assert llm.completion_calls == 4


@pytest.mark.parametrize("status", [408, 429])
def test_408_and_429_are_retried(llm, status):
    llm.fail("POST", "/completion", times=1, status=status)
    outcome = analyze(BATCH, sleep=Sleeps())
    assert (outcome.analysis_status, outcome.attempts) == ("llm", 2)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_falls_back_at_once_and_does_not_count_for_the_breaker(llm, status):
    llm.fail("POST", "/completion", times=5, status=status)
    sleeps = Sleeps()
    outcome = analyze(BATCH, sleep=sleeps)
    assert (outcome.analysis_status, outcome.attempts, sleeps) == ("fallback", 1, [])
    assert outcome.fallback_reason.startswith(f"http_4xx: LLM server answered HTTP {status}")
    assert llm.completion_calls == 1
    assert breaker("llm").snapshot().failures == 0


def test_timeout_with_a_small_llm_timeout(settings, llm):
    settings.LLM_TIMEOUT_SECONDS, settings.LLM_MAX_RETRIES = 0.3, 1
    llm.delay = 3.0
    outcome = analyze(BATCH, sleep=Sleeps())
    assert (outcome.analysis_status, outcome.attempts) == ("fallback", 2), outcome.fallback_reason
    assert outcome.fallback_reason.startswith("timeout: ")
    assert outcome.latency_ms < 3000  # waited 2 × 0.3 s, not for the 3 s answers


def test_connection_refused_is_retried_then_falls_back(settings, llm):
    settings.LLM_URL = f"http://127.0.0.1:{_free_port()}"
    outcome = analyze(BATCH, sleep=Sleeps())
    assert (outcome.analysis_status, outcome.attempts) == ("fallback", 4)
    assert outcome.fallback_reason.startswith("connection_error: ")


def test_dropped_connection_is_a_connection_error(settings, llm):
    settings.LLM_MAX_RETRIES = 0
    llm.script("POST", "/completion", Reply(drop=True))
    assert analyze(BATCH).fallback_reason.startswith("connection_error: ")


def test_non_json_body_and_missing_content_are_malformed(settings, llm):
    llm.script(
        "POST",
        "/completion",
        Reply(body=b"<html>502 Bad Gateway</html>", content_type="text/html"),
        Reply(json={"tokens_predicted": 3}),
        Reply(json=["not", "an", "object"]),
    )
    outcome = analyze(BATCH, sleep=Sleeps())
    assert (outcome.analysis_status, outcome.attempts) == ("llm", 4)
    settings.LLM_MAX_RETRIES = 0
    llm.script("POST", "/completion", Reply(json={"tokens_predicted": 3}))
    assert analyze(BATCH).fallback_reason.startswith("malformed_response: LLM response has no completion text")


def test_llm_backend_without_url_falls_back(settings):
    settings.LLM_BACKEND, settings.LLM_URL = "llamacpp", None
    outcome = analyze(BATCH)
    assert (outcome.analysis_status, outcome.backend, outcome.attempts) == ("fallback", "llamacpp", 0)
    assert "LLM_URL" in outcome.fallback_reason
    assert outcome.verdict == rules_verdict(BATCH)


# --- unparsable answers -----------------------------------------------------------------------------------------


def test_garbage_every_time_fails_parsing_and_falls_back_without_tripping_the_breaker(settings, llm):
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    llm.reply_text = "I am sorry, I cannot assess images."
    outcome = analyze(BATCH, sleep=Sleeps())
    assert (outcome.analysis_status, outcome.attempts, outcome.parse_status) == ("fallback", 4, "failed")
    assert outcome.parse_error == "no JSON object found in the completion"
    assert outcome.fallback_reason.startswith("parse_failed: ")
    assert outcome.raw_response == llm.reply_text
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (321, 54)
    assert llm.completion_calls == 4
    assert breaker("llm").snapshot().state == "closed"


def test_garbage_then_a_valid_answer_succeeds(llm):
    answers = iter(["{not json", '{"risk_score": "high"}', verdict_json(30, "medium")])
    llm.reply_fn = lambda body: next(answers)
    outcome = analyze(BATCH, sleep=Sleeps())
    assert (outcome.analysis_status, outcome.attempts, outcome.parse_status) == ("llm", 3, "ok")
    assert outcome.verdict.risk_score == 30


# --- circuit breaker --------------------------------------------------------------------------------------------


def test_breaker_opens_after_the_threshold_and_then_falls_back_immediately(settings, llm):
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    llm.fail("POST", "/completion", times=20, status=500)
    first = analyze(BATCH, sleep=Sleeps())
    assert llm.completion_calls == 3
    assert (first.analysis_status, first.attempts) == ("fallback", 4)
    assert first.fallback_reason.startswith("circuit_open: ")
    assert breaker("llm").snapshot().state == "open"

    sleeps = Sleeps()
    second = analyze(BATCH, sleep=sleeps)
    assert llm.completion_calls == 3  # nothing sent while open
    assert (second.analysis_status, second.attempts, sleeps) == ("fallback", 1, [])
    assert second.fallback_reason == "circuit_open: Circuit breaker 'llm' is open"
    assert second.verdict == rules_verdict(BATCH)


def test_breaker_failures_accumulate_across_analyses(settings, llm):
    settings.CIRCUIT_FAILURE_THRESHOLD, settings.LLM_MAX_RETRIES = 2, 0
    llm.fail("POST", "/completion", times=5, status=502)
    assert analyze(BATCH).fallback_reason.startswith("http_5xx")
    assert analyze(BATCH).fallback_reason.startswith("http_5xx")
    assert analyze(BATCH).fallback_reason.startswith("circuit_open")
    assert llm.completion_calls == 2


def test_a_success_resets_the_failure_count(settings, llm):
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    llm.fail("POST", "/completion", times=2, status=500)
    assert analyze(BATCH, sleep=Sleeps()).analysis_status == "llm"
    assert breaker("llm").snapshot().failures == 0


# --- health and metrics -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("backend_class", "path"), [(LlamaCppBackend, "/health"), (OpenAIBackend, "/v1/models")])
def test_health_probes(llm, backend_class, path):
    backend = backend_class(llm.url)
    assert backend.health() is True
    assert llm.requests_to(path)[-1].method == "GET"
    llm.healthy = False
    assert backend.health() is False
    backend.close()
    down = backend_class(f"http://127.0.0.1:{_free_port()}")
    assert down.health() is False
    down.close()


def test_invalid_url_is_a_permanent_connection_error(settings, llm):
    settings.LLM_URL = "http://[::1"
    outcome = analyze(BATCH, sleep=Sleeps())
    assert (outcome.analysis_status, outcome.attempts) == ("fallback", 1)
    assert outcome.fallback_reason.startswith("connection_error: Invalid LLM_URL")
    assert LlamaCppBackend("http://[::1").health() is False


def test_every_call_is_observed_in_the_llm_histogram(settings, llm):
    success, errors = _observations("llamacpp", "success"), _observations("llamacpp", "http_5xx")
    parse_failures = _observations("llamacpp", "parse_failed")
    llm.fail("POST", "/completion", times=1, status=500)
    answers = iter(["garbage", verdict_json()])
    llm.reply_fn = lambda body: next(answers)
    assert analyze(BATCH, sleep=Sleeps()).attempts == 3
    assert _observations("llamacpp", "success") == success + 1
    assert _observations("llamacpp", "http_5xx") == errors + 1
    assert _observations("llamacpp", "parse_failed") == parse_failures + 1


def test_night_batch_prompt_reaches_the_server(llm):
    batch = ctx(det("person", at=NIGHT))
    analyze(batch)
    assert "Period: night" in llm.completion_requests[0].json()["prompt"]
