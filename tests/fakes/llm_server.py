"""Fake LLM server speaking both protocols of CONTRACT §4.6.1: llama.cpp ``POST /completion`` (+ ``GET /health``)
and OpenAI-compatible ``POST /v1/chat/completions`` (+ ``GET /v1/models``).

The completion text is ``reply_text`` (or ``reply_fn(request_json) -> str``); script failures, garbage and delays
with ``script``/``fail``/``delay`` of the base class. Use the ``fake_llm`` fixture. ``verdict_json`` builds an
analysis answer, ``grades_json`` an answer to the AI audit's evaluation prompt.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.fakes.http_fake import FakeHttpServer, RecordedRequest, Reply


def verdict_json(score: int = 20, level: str = "low", summary: str = "A person walked by.", **extra) -> str:
    return json.dumps(
        {
            "risk_score": score,
            "risk_level": level,
            "summary": summary,
            "reasoning": extra.pop("reasoning", "Daytime, single person, no suspicious behaviour."),
            "recommended_action": extra.pop("recommended_action", "No action needed"),
            **extra,
        }
    )


def grades_json(
    context_usage: float = 4,
    reasoning_coherence: float = 4,
    risk_justification: float = 3,
    overall: float = 4,
    critique: str = "Sound reasoning; the zone context was used.",
    **extra,
) -> str:
    """An answer to the AI audit's evaluation prompt (CONTRACT §2.17)."""
    return json.dumps(
        {
            "context_usage": context_usage,
            "reasoning_coherence": reasoning_coherence,
            "risk_justification": risk_justification,
            "overall": overall,
            "critique": critique,
            **extra,
        }
    )


class FakeLLM(FakeHttpServer):
    def __init__(self):
        super().__init__()
        self.reply_text: str = verdict_json()
        self.reply_fn: Callable[[dict], str] | None = None
        self.model = "fake-nemotron"
        self.healthy = True

    def default_reply(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?")[0]
        if request.method == "GET" and path in ("/health", "/v1/models"):
            if not self.healthy:
                return Reply(status=503, json={"error": "loading"})
            return Reply(json={"status": "ok", "data": [{"id": self.model}]})
        if request.method == "POST" and path in ("/completion", "/v1/chat/completions"):
            payload = request.json() or {}
            text = self.reply_fn(payload) if self.reply_fn else self.reply_text
            if path == "/completion":
                counts = {"tokens_evaluated": 321, "tokens_predicted": 54}
                return Reply(json={"content": text, **counts, "model": self.model})
            return Reply(
                json={
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "model": self.model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375},
                }
            )
        return super().default_reply(request)

    @property
    def completion_calls(self) -> int:
        return len(self.completion_requests)

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        """Every completion request, both protocols, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] in ("/completion", "/v1/chat/completions")]


@pytest.fixture
def fake_llm():
    server = FakeLLM().start()
    yield server
    server.stop()
