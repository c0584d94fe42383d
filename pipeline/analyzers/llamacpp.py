"""llama.cpp server backend (CONTRACT §4.6.1): ``POST {LLM_URL}/completion`` with a ChatML prompt.

The completion text is ``content``; ``tokens_evaluated`` / ``tokens_predicted`` are the token counts. Health probe
``GET {LLM_URL}/health``.
"""

from __future__ import annotations

from pipeline.analyzers.base import Completion
from pipeline.analyzers.http import HttpLLMBackend, missing_text, optional_int
from pipeline.analyzers.prompt import chatml

STOP_SEQUENCES = ["<|im_end|>", "<|im_start|>"]


class LlamaCppBackend(HttpLLMBackend):
    name = "llamacpp"

    def prompt_text(self, system: str, user: str) -> str:
        return chatml(system, user)

    def request_body(self, system: str, user: str) -> dict:
        return {
            "prompt": self.prompt_text(system, user),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "n_predict": self.max_tokens,
            "stop": list(STOP_SEQUENCES),
            "stream": False,
        }

    def complete(self, system: str, user: str) -> Completion:
        data = self.post_json("/completion", self.request_body(system, user))
        text = data.get("content")
        if not isinstance(text, str):
            raise missing_text("no 'content' string")
        model = data.get("model")
        return Completion(
            text=text,
            model=model if isinstance(model, str) else "",
            prompt_tokens=optional_int(data.get("tokens_evaluated")),
            completion_tokens=optional_int(data.get("tokens_predicted")),
        )

    def health(self) -> bool:
        return self.probe("/health")
