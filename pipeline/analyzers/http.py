"""What the two HTTP LLM backends share (CONTRACT §4.6.1): client, headers, timeouts, error classification.

Timeouts: connect 10 s, and a deadline of ``LLM_TIMEOUT_SECONDS`` for the whole call (the body is streamed and the
deadline checked after every chunk, so a server trickling bytes cannot hold a worker past it).
"""

from __future__ import annotations

import json
import time

import httpx
from django.conf import settings

from hsi.resilience import error_type_for_status
from pipeline.analyzers.base import LLMBackend, LLMError

CONNECT_TIMEOUT_SECONDS = 10.0
HEALTH_TIMEOUT_SECONDS = 5.0
ERROR_BODY_CHARS = 200


class HttpLLMBackend(LLMBackend):
    """One LLM server reached over HTTP; subclasses build the request body and read the completion."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str = "",
        timeout: float = 120.0,
        temperature: float = 0.3,
        top_p: float = 0.95,
        max_tokens: int = 1536,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        headers = {"Accept": "application/json", "User-Agent": "hsi-analyzer"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT_SECONDS, timeout))
        )

    @classmethod
    def from_settings(cls) -> HttpLLMBackend:
        return cls(
            settings.LLM_URL or "",
            api_key=settings.LLM_API_KEY,
            model=settings.LLM_MODEL or "",
            timeout=settings.LLM_TIMEOUT_SECONDS,
            temperature=settings.LLM_TEMPERATURE,
            top_p=settings.LLM_TOP_P,
            max_tokens=settings.LLM_MAX_TOKENS,
        )

    def close(self) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def post_json(self, path: str, body: dict) -> dict:
        """POST ``body``; the decoded JSON object of a 2xx answer, else ``LLMError`` classified per §4.6.1."""
        deadline = time.monotonic() + self.timeout
        try:
            with self.client.stream("POST", self.url(path), json=body) as response:
                content = _read_before(response, deadline, self.timeout)
        except httpx.TimeoutException as error:
            raise LLMError(f"LLM request timed out: {error or type(error).__name__}", error_type="timeout") from error
        except httpx.InvalidURL as error:
            raise LLMError(f"Invalid LLM_URL: {error}", error_type="connection_error", retryable=False) from error
        except httpx.HTTPError as error:
            message = f"LLM connection failed: {error or type(error).__name__}"
            raise LLMError(message, error_type="connection_error") from error
        if response.status_code >= 400:
            error_type, retryable = error_type_for_status(response.status_code)
            snippet = content[:ERROR_BODY_CHARS].decode("utf-8", "replace")
            raise LLMError(
                f"LLM server answered HTTP {response.status_code}: {snippet}",
                error_type=error_type,
                retryable=retryable,
                counts_for_breaker=retryable,
            )
        try:
            data = json.loads(content)
        except ValueError as error:
            raise LLMError("LLM server answered with invalid JSON", error_type="malformed_response") from error
        if not isinstance(data, dict):
            raise LLMError("LLM server answered with a JSON non-object", error_type="malformed_response")
        return data

    def probe(self, path: str) -> bool:
        try:
            response = self.client.get(self.url(path), timeout=min(HEALTH_TIMEOUT_SECONDS, self.timeout))
        except (httpx.HTTPError, httpx.InvalidURL):
            return False
        return 200 <= response.status_code < 300


def _read_before(response: httpx.Response, deadline: float, timeout: float) -> bytes:
    chunks = []
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout(f"no complete answer within {timeout:g} s")
    return b"".join(chunks)


def missing_text(detail: str) -> LLMError:
    return LLMError(f"LLM response has no completion text ({detail})", error_type="malformed_response")


def optional_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
