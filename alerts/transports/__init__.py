"""Notification transports (CONTRACT §5.9): one module per channel kind, one small base class."""

from __future__ import annotations

from .base import SendResult, Transport, transport_for

__all__ = ["SendResult", "Transport", "transport_for"]
