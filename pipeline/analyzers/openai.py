"""OpenAI-compatible backend (CONTRACT §4.6.1): ``POST {LLM_URL}/v1/chat/completions`` with two messages.

The text is ``choices[0].message.content``; ``usage`` gives the token counts and the response ``model`` is
recorded. Health probe ``GET {LLM_URL}/v1/models``.
"""

from __future__ import annotations

from pipeline.analyzers.base import Completion
from pipeline.analyzers.http import HttpLLMBackend, missing_text, optional_int


class OpenAIBackend(HttpLLMBackend):
    name = "openai"

    def __init__(self, base_url: str, **kwargs):
        base = base_url.rstrip("/")
        super().__init__(base[: -len("/v1")] if base.endswith("/v1") else base, **kwargs)

    def request_body(self, system: str, user: str) -> dict:
        return {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stream": False,
        }

    def complete(self, system: str, user: str) -> Completion:
        data = self.post_json("/v1/chat/completions", self.request_body(system, user))
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise missing_text("no choices[0].message.content") from None
        if not isinstance(text, str):
            raise missing_text("choices[0].message.content is not a string")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        model = data.get("model")
        return Completion(
            text=text,
            model=model if isinstance(model, str) else "",
            prompt_tokens=optional_int(usage.get("prompt_tokens")),
            completion_tokens=optional_int(usage.get("completion_tokens")),
        )

    def health(self) -> bool:
        return self.probe("/v1/models")
