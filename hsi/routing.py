"""WebSocket routes. The consumers of ``/ws/events`` and ``/ws/system`` (CONTRACT §3) plug in here."""

websocket_urlpatterns: list = []
