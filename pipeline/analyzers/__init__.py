"""Analyzers (CONTRACT §4.6): the rules analyzer, the LLM backends, the prompt, output parsing and the fallback.

``analyze(ctx)`` is what the pipeline calls; it always returns an ``AnalysisOutcome`` (LLM trouble falls back to
the rules verdict). ``resolve_backend_name()`` and ``get_llm_backend()`` say which backend is configured.
"""

from pipeline.analyzers.analysis import analyze, get_llm_backend, resolve_backend_name

__all__ = ["analyze", "get_llm_backend", "resolve_backend_name"]
