"""Writes of the alerts app: rules and alerts (``rules``, ``alerts``), notification settings (``notifications``),
the delivery outbox (``deliveries``)."""
