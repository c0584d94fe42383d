"""Reads of the alerts app. Stub: the alert-engine work fills this in."""

from __future__ import annotations


def alert_json(alert) -> dict:
    """Alert JSON of CONTRACT §2.7 (without ``deliveries``): also the data of the ``alert.*`` WebSocket messages."""
    raise NotImplementedError
